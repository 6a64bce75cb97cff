import Foundation
import KeukentafelProtocol
import KeukentafelSQLite

/// Rows leaving the device: evictions (the row left this device's scopes), purges (the row was
/// erased), a resync (the server restarts the device's feed), and a remote wipe.
extension Replica {
    /// Deletes rows and everything visible only through them (rows whose scope is their `parent`
    /// column pointing at a deleted row: a case's visits and notes), with their versions, stashed
    /// cells and conflict records. Called inside `apply`'s transaction with capture off.
    ///
    /// An eviction keeps this device's own unsent changes to those rows: they are pushed, and the
    /// server accepts them if they were written while the row was still in the device's scopes, or
    /// refuses them (`out_of_scope`, shown by `kt status`). A purge removes them too: an erased row
    /// must not come back from a device that was offline.
    func remove(_ references: [RowReference], purge: Bool) throws -> Int {
        var queue = references
        var done = Set<RowReference>()
        while let next = queue.popLast() {
            guard done.insert(next).inserted else { continue }
            let arguments: [CellValue] = [.text(next.table), .text(next.row)]
            if dataModel.table(named: next.table) != nil {
                try connection.run("DELETE FROM \(ReplicaSchema.quote(next.table)) WHERE id = ?", [.text(next.row)])
            }
            try connection.run("DELETE FROM _kt_versions WHERE tbl = ? AND row_id = ?", arguments)
            try connection.run("DELETE FROM _kt_kept WHERE tbl = ? AND row_id = ?", arguments)
            try connection.run("DELETE FROM _kt_stash WHERE tbl = ? AND row_id = ?", arguments)
            try connection.run("DELETE FROM _kt_conflicts WHERE tbl = ? AND row_id = ?", arguments)
            if purge { try connection.run("DELETE FROM _kt_outbox WHERE tbl = ? AND row_id = ?", arguments) }
            for child in dataModel.tables {
                guard let column = child.scope?.parent, child.column(named: column)?.references == next.table else { continue }
                let live = try connection.query("SELECT id FROM \(ReplicaSchema.quote(child.name)) WHERE \(ReplicaSchema.quote(column)) = ?",
                                                [.text(next.row)])
                // A deleted child lives on only in its versions, with its values kept in _kt_kept.
                let dead = try connection.query("SELECT row_id FROM _kt_kept WHERE tbl = ? AND col = ? AND val = ?",
                                                [.text(child.name), .text(column), .text(next.row)])
                for row in live + dead { if case .text(let id) = row[0] { queue.append(RowReference(table: child.name, row: id)) } }
            }
        }
        return done.count
    }

    /// Why a resync runs.
    enum ResyncMode: String {
        /// The user's scopes changed: drop what the new feed does not hold.
        case scopes = "1"
        /// The server's store went back to a backup: keep, and send again, this device's own writes
        /// the restored store lacks.
        case recovery = "recover"
    }

    /// Starts the feed over: the cursor goes back to 0 and the rows of the new feed are noted, so
    /// that `finishResync()` can tell what the device no longer sees.
    func beginResync(_ mode: ResyncMode) throws {
        try connection.run("DELETE FROM _kt_seen")
        try connection.run("DELETE FROM _kt_repush")
        try setMeta("resync", mode.rawValue)
        try setMeta("cursor", "0")
        try setMeta("cursor_proof", nil)
        try setMeta("cursor_floor", nil)
    }

    /// The server refused this replica's cursor as one it never handed out (`cursor_ahead`): the feed
    /// starts over as after a restore of the server's store, so this device's own writes the store
    /// lacks are sent again.
    func startOverAfterRefusedCursor() throws {
        try locked { try connection.transaction { try beginResync(.recovery) } }
    }

    var resyncMode: ResyncMode? {
        get throws { try meta("resync").flatMap(ResyncMode.init(rawValue:)) }
    }

    func noteSeen(_ rows: [FeedRow]) throws {
        let stmt = try connection.statement("INSERT OR IGNORE INTO _kt_seen (tbl, row_id) VALUES (?, ?)")
        for row in rows {
            try stmt.bind(row.table, at: 1)
            try stmt.bind(row.row, at: 2)
            try stmt.run()
        }
    }

    /// During a recovery: a cell of this device's own is newer than the restored store's.
    func noteNewerOwnCell(table: String, row: String, column: String, serverVersion: CellVersion) throws {
        try connection.run("INSERT OR REPLACE INTO _kt_repush (tbl, row_id, col, base_hlc, base_node) VALUES (?, ?, ?, ?, ?)",
                           [.text(table), .text(row), .text(column), .integer(Int64(serverVersion.hlc)),
                            .integer(Int64(serverVersion.node.rawValue))])
    }

    /// The last page of a resync arrived. Rows the new feed did not hold are gone from this device,
    /// except those with changes of its own still to send — and, after a restore, those this device
    /// wrote itself: their cells, and its cells newer than the restored store's, go back into the
    /// outbox with their original versions. Returns (rows dropped, changes queued again).
    func finishResync(_ mode: ResyncMode) throws -> (dropped: Int, requeued: Int) {
        if mode == .recovery {
            // Rows the restored store does not have, that this device wrote: keep them and send again.
            let unseen = try connection.query("""
                SELECT v.tbl, v.row_id, v.versions FROM _kt_versions v
                WHERE NOT EXISTS (SELECT 1 FROM _kt_seen s WHERE s.tbl = v.tbl AND s.row_id = v.row_id)
                """)
            for row in unseen {
                guard case .text(let versions) = row[2] else { continue }
                for entry in try RowVersions(decoding: versions).entries where entry.version.node == node {
                    try connection.run("INSERT OR IGNORE INTO _kt_repush (tbl, row_id, col) VALUES (?, ?, ?)", [row[0], row[1], .text(entry.column)])
                }
            }
        }
        var dropped = 0
        for table in dataModel.tables {
            let keep = "SELECT row_id FROM _kt_seen WHERE tbl = ?1 UNION SELECT row_id FROM _kt_outbox WHERE tbl = ?1"
                + " UNION SELECT row_id FROM _kt_repush WHERE tbl = ?1"
            try connection.run("DELETE FROM \(ReplicaSchema.quote(table.name)) WHERE id NOT IN (\(keep))", [.text(table.name)])
            dropped += connection.changes
            try connection.run("DELETE FROM _kt_versions WHERE tbl = ?1 AND row_id NOT IN (\(keep))", [.text(table.name)])
            try connection.run("DELETE FROM _kt_kept WHERE tbl = ?1 AND row_id NOT IN (\(keep))", [.text(table.name)])
            try connection.run("DELETE FROM _kt_conflicts WHERE tbl = ?1 AND row_id NOT IN (\(keep))", [.text(table.name)])
        }
        var requeued = 0
        for cell in try connection.query("""
            SELECT r.tbl, r.row_id, r.col, v.versions, k.val, r.base_hlc, r.base_node FROM _kt_repush r
            JOIN _kt_versions v ON v.tbl = r.tbl AND v.row_id = r.row_id
            LEFT JOIN _kt_kept k ON k.tbl = r.tbl AND k.row_id = r.row_id AND k.col = r.col
            """) {
            guard case .text(let table) = cell[0], case .text(let row) = cell[1], case .text(let column) = cell[2],
                  case .text(let versions) = cell[3], let version = try RowVersions(decoding: versions)[column], version.node == node
            else { continue }
            var value = cell[4]
            if column != Merge.deletedColumn, dataModel.table(named: table)?.column(named: column) != nil,
               let live = try connection.query("SELECT \(ReplicaSchema.quote(column)) FROM \(ReplicaSchema.quote(table)) WHERE id = ?",
                                               [.text(row)]).first {
                value = live[0]
            }
            try connection.run("""
                INSERT INTO _kt_outbox (tbl, row_id, col, value, hlc, base_hlc, base_node, written_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """, [.text(table), .text(row), .text(column), value, .integer(Int64(version.hlc)), cell[5], cell[6], .integer(clock())])
            requeued += 1
        }
        try connection.run("DELETE FROM _kt_seen")
        try connection.run("DELETE FROM _kt_repush")
        try setMeta("resync", nil)
        return (dropped, requeued)
    }

    /// Remote wipe: the server reported this device lost. Destroys the key file of an encrypted replica
    /// first (overwritten in place, so the data is unreadable even when no file can be deleted), then
    /// deletes the replica's files (database, WAL, shared memory, attachments); the open connection is
    /// left unusable. Data blocks of a plain replica on the disk itself are the business of full-disk
    /// encryption, which field laptops must have.
    public func wipe() throws {
        readers.close()
        let keyPath = ReplicaKeyFile.path(forReplica: path)
        let keyDestroyed = !isEncrypted || ReplicaKeyFile.destroy(at: keyPath, remove: removeFile)
        try locked {
            appStatements.removeAll()
            try? connection.execute("PRAGMA secure_delete = ON; DELETE FROM _kt_outbox; DELETE FROM _kt_meta WHERE key = 'token';")
            for suffix in ["", "-wal", "-shm", "-journal"] where FileManager.default.fileExists(atPath: path + suffix) {
                try removeFile(path + suffix)
            }
            if FileManager.default.fileExists(atPath: attachmentsDirectory) { try removeFile(attachmentsDirectory) }
        }
        if !keyDestroyed { throw ReplicaError.damagedKeyFile("the key file '\(keyPath)' could not be overwritten or removed") }
    }
}
