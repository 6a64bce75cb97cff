import KeukentafelProtocol

/// The SQL that turns a data model into a replica: plain tables the app reads and writes, and the
/// triggers that capture every write into the outbox with a version and a base.
///
/// The triggers call functions the `Replica` registers on its connection (`kt_capture`, `kt_tick`,
/// `kt_check`, `kt_node`). A connection without them (say, the `sqlite3` shell) cannot write to a
/// synced table at all: better refused than silently not synced.
enum ReplicaSchema {
    static let metaDDL = """
        CREATE TABLE IF NOT EXISTS _kt_meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
        -- The versions of every cell this replica knows (written here or pulled), one row per synced
        -- row: `versions` is `column=<version>;` per cell, the version in its wire form (RowVersions; decision 0014).
        CREATE TABLE IF NOT EXISTS _kt_versions (
            tbl TEXT NOT NULL, row_id TEXT NOT NULL, versions TEXT NOT NULL,
            PRIMARY KEY (tbl, row_id)
        ) WITHOUT ROWID;
        -- Values that live nowhere else: the tombstone (_deleted) of a row, and the cells of a dead
        -- row, kept so that a newer edit brings the row back whole (decision 0003).
        CREATE TABLE IF NOT EXISTS _kt_kept (
            tbl TEXT NOT NULL, row_id TEXT NOT NULL, col TEXT NOT NULL, val,
            PRIMARY KEY (tbl, row_id, col)
        ) WITHOUT ROWID;
        -- Local writes not yet acknowledged by the server. AUTOINCREMENT: a change id is never reused.
        CREATE TABLE IF NOT EXISTS _kt_outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            tbl TEXT NOT NULL, row_id TEXT NOT NULL, col TEXT NOT NULL,
            value, hlc INTEGER NOT NULL,
            base_hlc INTEGER, base_node INTEGER,
            state TEXT NOT NULL DEFAULT 'pending', -- pending | rejected
            code TEXT, message TEXT, written_at INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS _kt_outbox_by_state ON _kt_outbox(state, seq);
        CREATE TRIGGER IF NOT EXISTS _kt_outbox_versions AFTER INSERT ON _kt_outbox BEGIN
            INSERT INTO _kt_versions (tbl, row_id, versions) VALUES (NEW.tbl, NEW.row_id, kt_versions_set(NULL, NEW.col, NEW.hlc, kt_node()))
            ON CONFLICT (tbl, row_id) DO UPDATE SET versions = kt_versions_set(versions, NEW.col, NEW.hlc, kt_node());
            -- A written cell is live again: no kept value for it; a tombstone keeps its own value.
            DELETE FROM _kt_kept WHERE tbl = NEW.tbl AND row_id = NEW.row_id AND col = NEW.col AND NEW.col <> '_deleted';
            INSERT INTO _kt_kept (tbl, row_id, col, val) SELECT NEW.tbl, NEW.row_id, NEW.col, NEW.value WHERE NEW.col = '_deleted'
            ON CONFLICT (tbl, row_id, col) DO UPDATE SET val = excluded.val;
            INSERT INTO _kt_meta (key, value) VALUES ('hlc', NEW.hlc)
            ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value);
        END;
        -- Who opened which record here (decision 0030): append-only and hash-chained (ViewLog); `sent`
        -- once the server stored it. Sent entries may be dropped, except the last: the chain goes on from it.
        CREATE TABLE IF NOT EXISTS _kt_views (
            seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, tbl TEXT NOT NULL, row_id TEXT NOT NULL,
            purpose TEXT NOT NULL, previous TEXT NOT NULL, hash TEXT NOT NULL, sent INTEGER NOT NULL DEFAULT 0
        );
        CREATE TRIGGER IF NOT EXISTS _kt_views_append_only BEFORE UPDATE OF seq, at, tbl, row_id, purpose, previous, hash ON _kt_views
            BEGIN SELECT RAISE(ABORT, 'the view log is append-only'); END;
        -- Cells of tables or columns this replica's data model does not know yet (a newer server model).
        -- Kept so that `kt upgrade` can apply them without downloading again.
        CREATE TABLE IF NOT EXISTS _kt_stash (
            tbl TEXT NOT NULL, row_id TEXT NOT NULL, col TEXT NOT NULL,
            value, hlc INTEGER NOT NULL, node INTEGER NOT NULL,
            PRIMARY KEY (tbl, row_id, col)
        ) WITHOUT ROWID;
        -- Rows received since a resync began (see Replica.beginResync).
        CREATE TABLE IF NOT EXISTS _kt_seen (tbl TEXT NOT NULL, row_id TEXT NOT NULL, PRIMARY KEY (tbl, row_id)) WITHOUT ROWID;
        -- Cells of this device's own to send again after the server's store went back (a restore).
        -- base: the restored store's version of the cell, if it has one.
        CREATE TABLE IF NOT EXISTS _kt_repush (tbl TEXT NOT NULL, row_id TEXT NOT NULL, col TEXT NOT NULL,
            base_hlc INTEGER, base_node INTEGER, PRIMARY KEY (tbl, row_id, col)) WITHOUT ROWID;
        -- Decisions on conflicts taken on this device, sent with the next push; kept, state 'refused',
        -- with the server's code and reason when it did not record them.
        CREATE TABLE IF NOT EXISTS _kt_resolutions (conflict_id INTEGER PRIMARY KEY, resolution TEXT NOT NULL, decided_at INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending', code TEXT, message TEXT);
        -- Conflicts the server recorded on rows this replica sees.
        CREATE TABLE IF NOT EXISTS _kt_conflicts (
            id INTEGER PRIMARY KEY,
            tbl TEXT NOT NULL, row_id TEXT NOT NULL, col TEXT NOT NULL,
            winner_value, winner_version TEXT NOT NULL, winner_device TEXT,
            loser_value, loser_version TEXT NOT NULL, loser_device TEXT,
            base_version TEXT, rule TEXT NOT NULL, review INTEGER NOT NULL, recorded_at TEXT NOT NULL,
            resolved_at TEXT, resolved_by TEXT, resolution TEXT,
            winner_device_name TEXT, loser_device_name TEXT,
            winner_user TEXT, loser_user TEXT
        );
        -- Attachment content in the folder next to the replica (decision 0026). state: 'upload' (attached
        -- here, not yet on the server) or 'stored' (on the server too).
        CREATE TABLE IF NOT EXISTS _kt_attachments (
            sha256 TEXT PRIMARY KEY, size INTEGER NOT NULL, state TEXT NOT NULL, added_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        """

    static func quote(_ identifier: String) -> String {
        // Model names are plain identifiers; the replacement is for anything else (and is slow).
        guard identifier.utf8.contains(UInt8(ascii: "\"")) else { return "\"" + identifier + "\"" }
        return "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
    static func literal(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }

    /// The generation of the capture triggers; a replica whose triggers are older gets them anew on
    /// open. 2: a new row's unset columns are not captured.
    static let captureVersion = "3"

    /// Drops the capture triggers of a table (before they are created again for a new model).
    static func dropTriggers(for table: DataModel.Table) -> String {
        // The one-per-table update triggers of capture version 2 and before, and the per-column ones since.
        (["check_insert", "check_update", "check_id", "insert", "update", "delete"]
            + table.columns.flatMap { ["check_update_\($0.name)", "update_\($0.name)"] })
            .map { "DROP TRIGGER IF EXISTS \(quote("_kt_\(table.name)_\($0)"));" }.joined(separator: "\n")
    }

    /// CREATE TABLE and the capture triggers for one table of the model.
    static func ddl(for table: DataModel.Table) -> String {
        let t = quote(table.name)
        let tl = literal(table.name)
        let columns = table.columns.map { "\(quote($0.name)) \($0.type.sqliteType)" }
        var sql = "CREATE TABLE IF NOT EXISTS \(t) (id TEXT PRIMARY KEY NOT NULL, \(columns.joined(separator: ", ")));\n"

        func base(_ row: String, _ column: DataModel.Column) -> (String, String) {
            let lookup = "FROM _kt_versions WHERE tbl = \(tl) AND row_id = \(row)"
            let name = literal(column.name)
            return ("(SELECT kt_version_hlc(versions, \(name)) \(lookup))", "(SELECT kt_version_node(versions, \(name)) \(lookup))")
        }
        let stamp = "kt_tick((SELECT value FROM _kt_meta WHERE key = 'hlc'))"
        let insertOutbox = "INSERT INTO _kt_outbox (tbl, row_id, col, value, hlc, base_hlc, base_node, written_at)"

        // Validation before the write, so a bad value never reaches table or outbox.
        let checksInsert = table.columns.map { "kt_check(\(tl), \(literal($0.name)), NEW.\(quote($0.name)))" }
        sql += """
            CREATE TRIGGER IF NOT EXISTS \(quote("_kt_\(table.name)_check_insert")) BEFORE INSERT ON \(t) WHEN kt_capture() BEGIN
                SELECT kt_check(\(tl), 'id', NEW.id)\(checksInsert.isEmpty ? "" : ", " + checksInsert.joined(separator: ", "));
            END;
            CREATE TRIGGER IF NOT EXISTS \(quote("_kt_\(table.name)_check_id")) BEFORE UPDATE OF id ON \(t) WHEN kt_capture() BEGIN
                SELECT RAISE(ABORT, 'keukentafel: the id of a synced row never changes; insert a new row instead') WHERE OLD.id IS NOT NEW.id;
            END;

            """
        // Updates are checked and captured by a trigger per column, `UPDATE OF` that column: SQLite runs
        // only those of the columns an UPDATE sets, and sets up each one's frame even when its WHEN is
        // false. One trigger for all columns cost a pulled one-cell update more than the write itself.
        for column in table.columns {
            let c = quote(column.name)
            // A cell that is fixed once set (a signed plan) refuses a different value.
            let immutable = column.policy != .immutable ? "" : """
                    SELECT RAISE(ABORT, 'keukentafel: \(table.name).\(column.name) is fixed once set [immutable_cell]') \
                WHERE OLD.\(c) IS NOT NULL AND OLD.\(c) IS NOT NEW.\(c);

                """
            sql += """
                CREATE TRIGGER IF NOT EXISTS \(quote("_kt_\(table.name)_check_update_\(column.name)")) BEFORE UPDATE OF \(c) ON \(t) WHEN kt_capture() BEGIN
                \(immutable)    SELECT kt_check(\(tl), \(literal(column.name)), NEW.\(c)) WHERE OLD.\(c) IS NOT NEW.\(c);
                END;

                """
        }
        // Only what was written is captured: a new row's unset columns are not cells (absent reads as
        // NULL everywhere). A row without any value still needs one cell to exist elsewhere: its first
        // column, NULL.
        let allNull = table.columns.map { "NEW.\(quote($0.name)) IS NULL" }.joined(separator: " AND ")
        let afterInsert = table.columns.enumerated().map { index, column -> String in
            let (baseHLC, baseNode) = base("NEW.id", column)
            let c = quote(column.name)
            let written = index == 0 ? "NEW.\(c) IS NOT NULL OR (\(allNull))" : "NEW.\(c) IS NOT NULL"
            return "    \(insertOutbox) SELECT \(tl), NEW.id, \(literal(column.name)), NEW.\(c), \(stamp), \(baseHLC), \(baseNode), kt_now() WHERE \(written);"
        }
        sql += "CREATE TRIGGER IF NOT EXISTS \(quote("_kt_\(table.name)_insert")) AFTER INSERT ON \(t) WHEN kt_capture() BEGIN\n"
            + afterInsert.joined(separator: "\n") + "\nEND;\n"

        for column in table.columns {
            let (baseHLC, baseNode) = base("NEW.id", column)
            let c = quote(column.name)
            sql += "CREATE TRIGGER IF NOT EXISTS \(quote("_kt_\(table.name)_update_\(column.name)")) AFTER UPDATE OF \(c) ON \(t) WHEN kt_capture() BEGIN\n"
                + "    \(insertOutbox) SELECT \(tl), NEW.id, \(literal(column.name)), NEW.\(c), \(stamp), \(baseHLC), \(baseNode), kt_now() WHERE OLD.\(c) IS NOT NEW.\(c);"
                + "\nEND;\n"
        }

        // A deletion carries as base the newest version of the row its writer saw, so the server can
        // tell whether someone edited the row concurrently.
        let newest = "FROM _kt_versions WHERE tbl = \(tl) AND row_id = OLD.id"
        // The values of the deleted row are kept beside its versions: if a concurrent newer edit wins,
        // the row comes back whole. Only cells with a version are kept, as the apply does.
        let keepValues = table.columns.map {
            "    INSERT INTO _kt_kept (tbl, row_id, col, val) SELECT \(tl), OLD.id, \(literal($0.name)), OLD.\(quote($0.name))\n"
                + "        WHERE (SELECT kt_version_hlc(versions, \(literal($0.name))) \(newest)) IS NOT NULL\n"
                + "        ON CONFLICT (tbl, row_id, col) DO UPDATE SET val = excluded.val;"
        }.joined(separator: "\n")
        sql += """
            CREATE TRIGGER IF NOT EXISTS \(quote("_kt_\(table.name)_delete")) AFTER DELETE ON \(t) WHEN kt_capture() BEGIN
                \(insertOutbox) VALUES (\(tl), OLD.id, '_deleted', 1, \(stamp),
                    (SELECT kt_versions_newest_hlc(versions) \(newest)), (SELECT kt_versions_newest_node(versions) \(newest)), kt_now());
            \(keepValues)
            END;

            """
        return sql
    }
}
