import KeukentafelProtocol

/// The store's tables, and what brings a store made by an earlier release up to date. The same tables
/// on PostgreSQL are in `PostgreSQL/PostgresSchema.swift`; migrations shared by both databases in
/// `migrateShared`.
enum StoreSchema {
    /// The store's tables on SQLite.
    static let sqlite = """
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS users (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            role TEXT NOT NULL,
            profile TEXT,
            created_at TEXT NOT NULL,
            disabled_at TEXT
        );
        CREATE TABLE IF NOT EXISTS user_scopes (
            user_id TEXT NOT NULL, scope TEXT NOT NULL, granted_at TEXT NOT NULL,
            PRIMARY KEY (user_id, scope)
        ) WITHOUT ROWID;
        -- When a user lost a scope: writes they made before still count as theirs to make.
        -- removed_seq: the feed's sequence number then; a device sent that far knows of the removal.
        CREATE TABLE IF NOT EXISTS user_scope_removals (
            user_id TEXT NOT NULL, scope TEXT NOT NULL, removed_ms INTEGER NOT NULL, removed_seq INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX IF NOT EXISTS user_scope_removals_by_user ON user_scope_removals(user_id);
        -- resync = 1: the device's next pull tells it to start over (its user's scopes changed).
        -- node: the replica node bound to the device by its first push; node_high_water: the newest
        -- version (HLC) accepted from it; informed_seq: how far the feed was sent to it (decision 0017).
        CREATE TABLE IF NOT EXISTS devices (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            revoked_at TEXT,
            user_id TEXT REFERENCES users(id),
            lost_at TEXT,
            resync INTEGER NOT NULL DEFAULT 0,
            node INTEGER,
            node_high_water INTEGER NOT NULL DEFAULT 0,
            informed_seq INTEGER NOT NULL DEFAULT 0,
            confirmed_seq INTEGER NOT NULL DEFAULT 0,
            -- A lost device confirmed it wiped its replica (POST /v1/wiped), and what it said.
            wiped_at TEXT, wipe_detail TEXT,
            -- The device's number, which its deliveries name it by (decision 0032).
            no INTEGER
        );
        -- The scopes each row is in, derived from the data model's scope rules (ScopePlan).
        CREATE TABLE IF NOT EXISTS row_scopes (
            tbl TEXT NOT NULL, row_id TEXT NOT NULL, scope TEXT NOT NULL,
            PRIMARY KEY (tbl, row_id, scope)
        ) WITHOUT ROWID;
        -- Rows that left a scope (kind evict) or were erased (kind purge), in feed order.
        CREATE TABLE IF NOT EXISTS evictions (
            seq INTEGER NOT NULL, tbl TEXT NOT NULL, row_id TEXT NOT NULL, scope TEXT NOT NULL,
            at_ms INTEGER NOT NULL, kind TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS evictions_by_seq ON evictions(seq);
        CREATE INDEX IF NOT EXISTS evictions_by_row ON evictions(tbl, row_id);
        -- Erased rows, by id only, so they can never be written again.
        CREATE TABLE IF NOT EXISTS erased_rows (tbl TEXT NOT NULL, row_id TEXT NOT NULL, PRIMARY KEY (tbl, row_id)) WITHOUT ROWID;
        -- Which device received which row, first and last time: "who received this resident's data".
        -- The device by its number (devices.no), times in milliseconds (decision 0032): one entry per row
        -- and device that received it, so a region's bootstraps write millions.
        -- removal_seq: the device was told to delete the row (evicted, purged) by the page with this
        -- cursor; it confirmed that once it came back with a cursor that far (devices.confirmed_seq).
        CREATE TABLE IF NOT EXISTS deliveries (
            tbl TEXT NOT NULL, row_id TEXT NOT NULL, device_no INTEGER NOT NULL,
            first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL, times INTEGER NOT NULL,
            removal_seq INTEGER, removal_ms INTEGER,
            PRIMARY KEY (tbl, row_id, device_no)
        ) WITHOUT ROWID;
        -- After an erasure, per device that held the erased rows: the purge it has yet to confirm
        -- (confirmed once devices.confirmed_seq reaches purge_seq). subject: the hashed resident.
        CREATE TABLE IF NOT EXISTS erasure_receipts (
            subject TEXT NOT NULL, device TEXT NOT NULL, rows INTEGER NOT NULL, purge_seq INTEGER NOT NULL, erased_at TEXT NOT NULL,
            PRIMARY KEY (subject, device)
        ) WITHOUT ROWID;
        -- Who viewed which record, as the devices recorded it (decision 0030), with what the check of
        -- each device's hash chain found (ok, gap, altered). Append-only: only an erasure removes entries.
        CREATE TABLE IF NOT EXISTS views (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            device TEXT NOT NULL, seq INTEGER NOT NULL, at TEXT NOT NULL, received_at TEXT NOT NULL, offline INTEGER NOT NULL,
            tbl TEXT NOT NULL, row_id TEXT NOT NULL, purpose TEXT NOT NULL, previous TEXT NOT NULL, hash TEXT NOT NULL, finding TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS views_by_row ON views(tbl, row_id);
        CREATE INDEX IF NOT EXISTS views_by_device ON views(device, seq);
        CREATE TRIGGER IF NOT EXISTS views_no_update BEFORE UPDATE ON views
            BEGIN SELECT RAISE(ABORT, 'the view log is append-only'); END;
        CREATE TRIGGER IF NOT EXISTS views_no_delete BEFORE DELETE ON views
            WHEN (SELECT value FROM meta WHERE key = 'erasing') IS NOT 1
            BEGIN SELECT RAISE(ABORT, 'the view log is append-only'); END;
        -- The last entry received from each device: where its chain goes on.
        CREATE TABLE IF NOT EXISTS view_heads (device TEXT PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL) WITHOUT ROWID;
        -- Administrative actions. Append-only: only an erasure may remove entries (their payloads).
        CREATE TABLE IF NOT EXISTS audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, subject TEXT, detail TEXT
        );
        CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
            BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
        CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
            WHEN (SELECT value FROM meta WHERE key = 'erasing') IS NOT 1
            BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
        -- The current state of every synced row, one record per row (decision 0020): `cells` holds its
        -- cells' values, versions, writers and sequence numbers (RowCoding), `n` how many; `seq` is the
        -- greatest of those sequence numbers and orders the change feed.
        CREATE TABLE IF NOT EXISTS records (
            tbl TEXT NOT NULL, row_id TEXT NOT NULL,
            seq INTEGER NOT NULL, n INTEGER NOT NULL, cells BLOB NOT NULL,
            PRIMARY KEY (tbl, row_id)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS records_by_seq ON records(seq);
        -- The numbers records and history entries name columns by (decision 0034, ColumnNames): given
        -- when a store opens with a model, never changed or reused.
        CREATE TABLE IF NOT EXISTS column_names (no INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
        -- The values of reference and unique-key columns, to find rows by them (RowLinks). Keyed by value
        -- only (decision 0033): a link is removed by its old value, which the row's record holds.
        CREATE TABLE IF NOT EXISTS row_links (
            tbl TEXT NOT NULL, row_id TEXT NOT NULL, col TEXT NOT NULL, value NOT NULL,
            PRIMARY KEY (value, tbl, col, row_id)
        ) WITHOUT ROWID;
        -- Every accepted change, one entry per row a push wrote to (decision 0018): `changes` holds
        -- that push's changes to the row (HistoryCoding), `n` how many. Appended in arrival order.
        -- The writer (decision 0035): a registered device by its number (device_no), another writer
        -- (office, demo) by name (device); received_ms: when the push arrived, in milliseconds.
        CREATE TABLE IF NOT EXISTS history (
            id INTEGER PRIMARY KEY,
            tbl TEXT NOT NULL, row_id TEXT NOT NULL,
            device_no INTEGER, device TEXT, received_ms INTEGER NOT NULL,
            n INTEGER NOT NULL, changes BLOB NOT NULL
        );
        CREATE INDEX IF NOT EXISTS history_by_row ON history(tbl, row_id);
        -- Per replica node, the greatest change counter in the history: what makes pushes idempotent
        -- without an index over every change id (ChangeMarks).
        CREATE TABLE IF NOT EXISTS change_marks (node INTEGER PRIMARY KEY, counter INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS conflicts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            seq INTEGER NOT NULL,
            tbl TEXT NOT NULL, row_id TEXT NOT NULL, col TEXT NOT NULL,
            winner_value, winner_hlc INTEGER NOT NULL, winner_node INTEGER NOT NULL, winner_device TEXT,
            loser_value, loser_hlc INTEGER NOT NULL, loser_node INTEGER NOT NULL, loser_device TEXT,
            base_hlc INTEGER, base_node INTEGER,
            rule TEXT NOT NULL, review INTEGER NOT NULL,
            recorded_at TEXT NOT NULL,
            resolved_at TEXT, resolved_by TEXT, resolution TEXT
        );
        CREATE INDEX IF NOT EXISTS conflicts_by_seq ON conflicts(seq);
        CREATE INDEX IF NOT EXISTS conflicts_by_row ON conflicts(tbl, row_id);
        -- Attachments (decision 0026): content whose SHA-256 the server checked, stored once; owner: the
        -- device whose upload's chunks hold it (kept where they are: moving a chunk rewrites all its pages).
        CREATE TABLE IF NOT EXISTS attachments (
            sha256 TEXT PRIMARY KEY, size INTEGER NOT NULL, stored_at TEXT NOT NULL, owner TEXT NOT NULL
        ) WITHOUT ROWID;
        -- Their bytes, in the chunks they were uploaded in, per uploading device (owner); served only once
        -- `attachments` names that device's upload as the content.
        CREATE TABLE IF NOT EXISTS attachment_chunks (
            sha256 TEXT NOT NULL, owner TEXT NOT NULL, pos INTEGER NOT NULL, len INTEGER NOT NULL, bytes BLOB NOT NULL,
            PRIMARY KEY (sha256, owner, pos)
        );
        -- Each device's upload of each content: how far it got, and when it completed.
        CREATE TABLE IF NOT EXISTS attachment_uploads (
            sha256 TEXT NOT NULL, device TEXT NOT NULL, size INTEGER NOT NULL, received INTEGER NOT NULL,
            started_at TEXT NOT NULL, completed_at TEXT, session TEXT,
            PRIMARY KEY (sha256, device)
        ) WITHOUT ROWID;
        """

    /// Brings a store made by an earlier version up to date (columns added since).
    static func migrate(_ connection: any StoreConnection) throws {
        let columns = Set(try connection.query("PRAGMA table_info(devices)").compactMap { $0[1].string })
        for (column, definition) in [("user_id", "TEXT"), ("lost_at", "TEXT"), ("resync", "INTEGER NOT NULL DEFAULT 0"),
                                     ("node", "INTEGER"), ("node_high_water", "INTEGER NOT NULL DEFAULT 0"),
                                     ("informed_seq", "INTEGER NOT NULL DEFAULT 0"), ("confirmed_seq", "INTEGER NOT NULL DEFAULT 0"),
                                     ("wiped_at", "TEXT"), ("wipe_detail", "TEXT"), ("no", "INTEGER")]
        where !columns.contains(column) {
            try connection.execute("ALTER TABLE devices ADD COLUMN \(column) \(definition)")
        }
        // Deliveries by device id and ISO times (before decision 0032) first gain the removal columns, then move.
        let deliveryColumns = Set(try connection.query("PRAGMA table_info(deliveries)").compactMap { $0[1].string })
        if deliveryColumns.contains("device") {
            for (column, definition) in [("removal_seq", "INTEGER"), ("removal_at", "TEXT")] where !deliveryColumns.contains(column) {
                try connection.execute("ALTER TABLE deliveries ADD COLUMN \(column) \(definition)")
            }
        }
        let removalColumns = Set(try connection.query("PRAGMA table_info(user_scope_removals)").compactMap { $0[1].string })
        if !removalColumns.contains("removed_seq") {
            try connection.execute("ALTER TABLE user_scope_removals ADD COLUMN removed_seq INTEGER NOT NULL DEFAULT 0")
        }
        try migrateShared(connection)
        try connection.transaction { try migrateHistoryFormat(connection) }
        try connection.transaction { try migrateHistory(connection) }
        try connection.transaction { try migrateRecordFormat(connection) }
        try connection.transaction { try migrateCells(connection) }
        try connection.transaction { try migrateDeliveries(connection) }
        try connection.transaction { try migrateHistoryWriters(connection) }
        try connection.transaction { try migrateRowLinks(connection) }
        try noteLayout(connection)
    }
}

extension StoreSchema {
    /// State every store needs whatever release made it: the unique index on device nodes, the
    /// devices' nodes as their history shows them (stores from before decision 0017), and the key
    /// that signs feed cursors. Idempotent; inside the caller's write transaction.
    static func migrateShared(_ connection: any StoreConnection) throws {
        if try connection.scalar("SELECT value FROM meta WHERE key = 'cursor_key'") == nil {
            try connection.setMeta("cursor_key", .text(CursorProof.newKey()))
        }
        guard try connection.scalar("SELECT value FROM meta WHERE key = 'nodes_bound'") == nil else { return }
        // Each node belongs to the device that used it first; each device keeps the newest node it owns.
        var firstUse: [Int64: (device: String, first: Int64)] = [:]
        var newest: [String: (node: Int64, last: Int64)] = [:]
        let known = Set(try connection.query("SELECT id FROM devices").compactMap { $0[0].string })
        let uses = try nodeUses(connection)
        for use in uses {
            guard let node = use[0].int64, let device = use[1].string, known.contains(device), let first = use[2].int64 else { continue }
            if firstUse[node].map({ first < $0.first }) ?? true { firstUse[node] = (device, first) }
        }
        for use in uses {
            guard let node = use[0].int64, let device = use[1].string, firstUse[node]?.device == device, let last = use[3].int64 else { continue }
            if newest[device].map({ last > $0.last }) ?? true { newest[device] = (node, last) }
        }
        for (device, binding) in newest.sorted(by: { $0.key < $1.key }) {
            try connection.run("UPDATE devices SET node = ?, node_high_water = ? WHERE id = ? AND node IS NULL",
                               [.integer(binding.node), .integer(binding.last), .text(device)])
        }
        // Scope removals from before removed_seq: as if made at the current head.
        if let head = try connection.scalar("SELECT value FROM meta WHERE key = 'seq'")?.int64 {
            try connection.run("UPDATE user_scope_removals SET removed_seq = ? WHERE removed_seq = 0", [.integer(head)])
        }
        try connection.execute("CREATE UNIQUE INDEX IF NOT EXISTS devices_by_node ON devices(node) WHERE node IS NOT NULL")
        try connection.setMeta("nodes_bound", .integer(1))
    }

    /// Per node and device in the history: `[node, device, first hlc, last hlc]`. A store this old
    /// usually still keeps its history per cell in `changes` (moved to `history` after this).
    private static func nodeUses(_ connection: any StoreConnection) throws -> [[CellValue]] {
        if try hasTable("changes", connection) {
            return try connection.query("SELECT node, device, min(hlc), max(hlc) FROM changes WHERE device IS NOT NULL GROUP BY node, device")
        }
        struct Use: Hashable { var node: Int64, device: String }
        var spans: [Use: (first: Int64, last: Int64)] = [:]
        // The writer by id, whether the history keeps it so or by number (decision 0035).
        let read = try connection.cachedStatement(try hasColumn("history", "device_no", connection)
            ? "SELECT coalesce(d.id, h.device), h.changes FROM history h LEFT JOIN devices d ON d.no = h.device_no WHERE h.device_no IS NOT NULL OR h.device IS NOT NULL"
            : "SELECT device, changes FROM history WHERE device IS NOT NULL")
        let names = NumberedNames.fixed(try ColumnNames.read(connection))
        defer { read.reset() }
        while try read.step() {
            guard let device = read.text(0), let changes = try read.withBytes(1, { try HistoryCoding.decode($0, columns: names) }) else { continue }
            for change in changes {
                let use = Use(node: Int64(change.version.node.rawValue), device: device)
                let hlc = Int64(change.version.hlc)
                let span = spans[use] ?? (hlc, hlc)
                spans[use] = (min(span.first, hlc), max(span.last, hlc))
            }
        }
        return spans.sorted { ($0.key.node, $0.key.device) < ($1.key.node, $1.key.device) }.map {
            [.integer($0.key.node), .text($0.key.device), .integer($0.value.first), .integer($0.value.last)]
        }
    }
}
