import Foundation
import KeukentafelProtocol
import KeukentafelSQLite

extension ServerStore {
    /// The current value and version of one cell, or `nil` if it was never written.
    public func cell(table: String, row: String, column: String) throws -> VersionedValue? {
        try reader.withLock { connection in
            let rows = try connection.query("SELECT value, hlc, node FROM cells WHERE tbl = ? AND row_id = ? AND col = ?",
                                            [.text(table), .text(row), .text(column)])
            guard let r = rows.first, let version = CellVersion(hlc: r[1], node: r[2]) else { return nil }
            return VersionedValue(value: r[0], version: version)
        }
    }

    /// Whether the row exists and is not deleted (the same rule the push path applies).
    public func rowIsLive(table: String, row: String) throws -> Bool {
        try reader.withLock { connection in
            var cells: [String: PushContext.StoredCell] = [:]
            for r in try connection.query("SELECT col, value, hlc, node, device FROM cells WHERE tbl = ? AND row_id = ?", [.text(table), .text(row)]) {
                guard case .text(let column) = r[0], let version = CellVersion(hlc: r[2], node: r[3]) else { continue }
                cells[column] = PushContext.StoredCell(value: VersionedValue(value: r[1], version: version), device: r[4].string)
            }
            let state = PushContext.RowState(cells)
            return state.newestOther != nil && !state.isDeleted
        }
    }

    /// Every accepted write of a row (or of one of its cells), oldest first.
    public func history(table: String, row: String, column: String? = nil) throws -> [HistoryEntry] {
        try reader.withLock { connection in
            var sql = """
                SELECT c.change_id, c.col, c.value, c.hlc, c.node, c.device, c.received_at, c.status, c.won, d.name
                FROM changes c LEFT JOIN devices d ON d.id = c.device WHERE c.tbl = ? AND c.row_id = ?
                """
            var arguments: [CellValue] = [.text(table), .text(row)]
            if let column {
                sql += " AND c.col = ?"
                arguments.append(.text(column))
            }
            return try connection.query(sql + " ORDER BY c.hlc, c.node", arguments).compactMap { r in
                guard let version = CellVersion(hlc: r[3], node: r[4]) else { return nil }
                return HistoryEntry(changeID: r[0].string ?? "", column: r[1].string ?? "", value: r[2], version: version,
                                    device: r[5].string, deviceName: r[9].string, receivedAt: r[6].string ?? "",
                                    status: r[7].string ?? "", won: r[8].int64.map { $0 != 0 })
            }
        }
    }

    /// Counts for health and tests: cells, accepted changes, conflicts, devices.
    /// The number of cells (live or deleted) of a row.
    public func cellCount(table: String, row: String) throws -> Int {
        try reader.withLock { connection in
            Int(try connection.scalar("SELECT count(*) FROM cells WHERE tbl = ? AND row_id = ?", [.text(table), .text(row)])?.int64 ?? 0)
        }
    }

    /// A row and every row whose scopes derive from it (a case: its visits, notes, plans and goals,
    /// its resident and what hangs off the resident), by the data model's scope rules.
    public func rowsTakingScopes(from root: RowReference) throws -> [RowReference] {
        try reader.withLock { connection in
            var found: [RowReference] = []
            var seen = Set<RowReference>()
            var queue = [root]
            while let next = queue.popLast() {
                guard seen.insert(next).inserted else { continue }
                found.append(next)
                for dependent in scopePlan.dependents[next.table] ?? [] {
                    switch dependent {
                    case .children(let table, let column):
                        for child in try rowsReferencing(next.row, from: table, column: column, connection) {
                            queue.append(RowReference(table: table, row: child))
                        }
                    case .referenced(let table, let column):
                        if let target = try connection.scalar("SELECT value FROM cells WHERE tbl = ? AND row_id = ? AND col = ?",
                                                              [.text(next.table), .text(next.row), .text(column)])?.string {
                            queue.append(RowReference(table: table, row: target))
                        }
                    }
                }
            }
            return found
        }
    }

    public func counts() throws -> [String: Int64] {
        try reader.withLock { connection in
            var result: [String: Int64] = [:]
            for table in ["cells", "changes", "conflicts", "devices"] {
                result[table] = try connection.scalar("SELECT count(*) FROM \(table)")?.int64 ?? 0
            }
            return result
        }
    }
}

extension ServerStore {
    /// Refuses an operation that only the SQLite store has, saying what to do instead.
    func requireSQLite(_ operation: String, instead: String) throws {
        guard dialect == .sqlite else { throw AdminError.invalid("\(operation) works on the SQLite store only; on PostgreSQL, \(instead)") }
    }

    /// An online backup of the store to `path`: consistent, taken while the server keeps serving.
    public func backup(to path: String, progress: (Int, Int) -> Void = { _, _ in }) throws {
        try requireSQLite("backup", instead: "back up the database with pg_dump")
        let source = try SQLiteConnection(path: (directory as NSString).appendingPathComponent(Self.fileName), readOnly: true)
        try source.backup(to: path, progress: progress)
    }

    /// Whether the store answers (for `/readyz`).
    public func isReady() -> Bool {
        (try? reader.withLock { try $0.scalar("SELECT value FROM meta WHERE key = 'seq'") }) != nil
    }
}

extension ServerStore {
    /// Replaces the store's contents with a backup (`ktd admin backup`) while the server may run:
    /// SQLite's backup API copies the file into the open store in one write transaction; the server's
    /// connections see the restored state from their next transaction. The feed gets a new epoch, so
    /// every device notices that the store went back: it starts its feed over, keeps its unsent
    /// writes, and sends again its own writes the restored store lacks (decision 0011).
    public func restore(from path: String, actor: String) throws -> (sequence: Int64, epoch: String, erasedAgain: Int) {
        try requireSQLite("restore", instead: "restore with pg_restore; the first device that was ahead of the restored "
                          + "database makes the server start a new feed epoch, and every device recovers as after `ktd admin restore`")
        guard FileManager.default.fileExists(atPath: path) else { throw AdminError.notFound("no backup file at '\(path)'") }
        let source = try SQLiteConnection(path: path, readOnly: true)
        guard case .text("ok")? = try source.scalar("PRAGMA integrity_check") else {
            throw AdminError.invalid("'\(path)' is damaged (PRAGMA integrity_check failed); nothing was restored")
        }
        guard (try? source.scalar("SELECT value FROM meta WHERE key = 'seq'")) != nil else {
            throw AdminError.invalid("'\(path)' is not a Keukentafel store backup (no meta table)")
        }
        let epoch = NodeID.random().description
        // Erasures are never undone: what was erased since the backup is erased again after it.
        let erased = try reader.withLock { connection in
            try connection.query("SELECT tbl, row_id FROM erased_rows").compactMap { row -> (table: String, key: String)? in
                guard let table = row[0].string, let key = row[1].string else { return nil }
                return (table, key)
            }
        }
        let sequence = try writer.withLock { connection -> Int64 in
            guard let connection = connection as? SQLiteConnection else { throw AdminError.invalid("restore needs the SQLite store") }
            try source.copy(into: connection)
            try Self.migrate(connection)  // a backup from an older release
            try Self.createReferenceIndex(connection, plan: scopePlan)
            try connection.setMeta("epoch", .text(epoch))
            try audit(connection, actor: actor, action: "restore", subject: path, detail: "new epoch \(epoch)")
            return try connection.scalar("SELECT value FROM meta WHERE key = 'seq'")?.int64 ?? 0
        }
        let again = try eraseAgain(erased, actor: actor)
        return (sequence, epoch, again?.rows ?? 0)
    }
}
