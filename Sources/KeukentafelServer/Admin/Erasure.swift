import Crypto
import Foundation
import KeukentafelProtocol
import KeukentafelSQLite

/// What an erasure removed.
public struct ErasureReport: Codable, Sendable {
    /// Rows erased.
    public var rows: Int
    /// Cells erased.
    public var cells: Int
    /// History entries erased.
    public var historyEntries: Int
    /// Conflict records erased.
    public var conflicts: Int
    /// Attachment contents removed (no row left referring to them).
    public var attachments: Int = 0
    /// Devices that held some of the rows and have not yet confirmed deleting them: they do on their next
    /// sync (`ktd admin device unconfirmed` lists those that stay away).
    public var devicesToConfirm: [String] = []
    /// Rows erased per table.
    public var rowsByTable: [String: Int]
    /// The store's size before.
    public var bytesBefore: Int64
    /// The store's size after it was rebuilt.
    public var bytesAfter: Int64
}

/// Erasing a resident and everything about them (AVG art. 17), and erasing again after a restore.
public struct Erasure: Sendable {
    let store: ServerStore

    init(store: ServerStore) { self.store = store }

    /// A resident and everything about them: every row that references one of these rows (their
    /// cases, and the visits, notes and plans of those cases; their care relations, consents, help
    /// requests; their volunteer or carer record and what hangs off that), plus rows that are only
    /// reachable through these (a carer who cared only for this resident, a household only their
    /// cases point to). Follows the data model's reference columns; nothing is named by hand.
    public func rowsOfResident(_ id: String) throws -> [RowReference] {
        try store.reader.withConnection { connection in try rowsOfResident(id, connection) }
    }

    func rowsOfResident(_ id: String, _ connection: any StoreConnection) throws -> [RowReference] {
        let root = RowReference(table: "residents", row: id)
        guard try !Records(connection, store: store).existing(table: "residents", rows: [id]).isEmpty else {
            throw AdminError.notFound("no resident with id \(id)")
        }
        let references = store.dataModel.tables.flatMap { table in
            table.columns.filter { $0.type == .reference }.map { (table: table.name, column: $0.name, target: $0.references ?? "") }
        }
        var found: Set<RowReference> = [root]
        var order = [root]
        var changed = true
        while changed {
            changed = false
            var queue = order
            while let next = queue.popLast() {
                for reference in references where reference.target == next.table {
                    for row in try Records(connection, store: store).rows(of: reference.table, whose: reference.column, is: next.row) {
                        let child = RowReference(table: reference.table, row: row)
                        if found.insert(child).inserted { order.append(child); queue.append(child); changed = true }
                    }
                }
            }
            // Rows visible only through rows of the set (referencedBy): orphaned once it goes.
            for table in store.dataModel.tables {
                guard case .referencedBy(let sourceTable, let column)? = store.scopePlan.rules[table.name] else { continue }
                let candidates = Set(order.filter { $0.table == sourceTable }.compactMap { source -> String? in
                    try? Records(connection, store: store).value(table: source.table, row: source.row, column: column)?.string
                })
                for candidate in candidates.sorted() {
                    let row = RowReference(table: table.name, row: candidate)
                    guard !found.contains(row) else { continue }
                    let sources = try Records(connection, store: store).rows(of: sourceTable, whose: column, is: candidate)
                    if sources.allSatisfy({ found.contains(RowReference(table: sourceTable, row: $0)) }) {
                        found.insert(row)
                        order.append(row)
                        changed = true
                    }
                }
            }
        }
        return order
    }

    /// The stored form of an erased row's id: a hash, so the list of erased rows names nobody.
    static func erasedKey(_ row: String) -> String {
        sha256Hex(row)
    }

    /// Erases a resident (AVG art. 17) and everything about them from the store: current state,
    /// history, conflict records, delivery records and audit entries that name those rows. What stays:
    /// the fact that an erasure happened (by whom, when, how many rows), the hashed ids of the rows so
    /// they can never be written again, and a purge entry per row in the feed so that every device
    /// deletes them on its next sync. The file is then rebuilt (VACUUM) and the write-ahead log
    /// emptied, so no old page holds the data.
    public func eraseResident(_ id: String, actor: String) throws -> ErasureReport {
        try erase(actor: actor, subject: "sha256:" + Erasure.erasedKey(id)) { connection in try rowsOfResident(id, connection) }
    }

    /// Erases the rows `select` picks inside the erasure's transaction, then rebuilds the file.
    func erase(actor: String, subject: String, action: String = "erase.resident",
               _ select: (any StoreConnection) throws -> [RowReference]) throws -> ErasureReport {
        let bytesBefore = Int64(store.sizeInBytes())
        var report = ErasureReport(rows: 0, cells: 0, historyEntries: 0, conflicts: 0, rowsByTable: [:], bytesBefore: bytesBefore, bytesAfter: 0)
        try store.writer.withLock { connection in
            try connection.transaction {
                let rows = try select(connection)
                let content = try store.attachments.referencedContent(of: rows, connection)
                report.devicesToConfirm = try store.deletionReceipts.noteErasure(of: rows, subject: subject, purgeSequence: 0, connection)
                var sequence = try connection.scalar("SELECT value FROM meta WHERE key = 'seq'")?.int64 ?? 0
                try connection.setMeta("erasing", .integer(1))
                let now = store.clock()
                for row in rows {
                    let arguments: [CellValue] = [.text(row.table), .text(row.row)]
                    var scopes = try connection.query("SELECT scope FROM row_scopes WHERE tbl = ? AND row_id = ?", arguments).compactMap { $0[0].string }
                    if scopes.isEmpty { scopes = [Access.everyScope] }
                    let cells = try Records(connection, store: store).cells(table: row.table, row: row.row) ?? [:]
                    report.cells += cells.count
                    // Links are keyed by value (decision 0033): the record says which the row has.
                    for (column, cell) in cells where cell.value.value != .null && store.links.isLinked(table: row.table, column: column) {
                        try connection.run("DELETE FROM row_links WHERE value = ? AND tbl = ? AND col = ? AND row_id = ?",
                                           [cell.value.value, .text(row.table), .text(column), .text(row.row)])
                    }
                    try connection.run("DELETE FROM records WHERE tbl = ? AND row_id = ?", arguments)
                    report.historyEntries += Int(try connection.scalar("SELECT CAST(coalesce(sum(n), 0) AS BIGINT) FROM history WHERE tbl = ? AND row_id = ?",
                                                                       arguments)?.int64 ?? 0)
                    try connection.run("DELETE FROM history WHERE tbl = ? AND row_id = ?", arguments)
                    try connection.run("DELETE FROM conflicts WHERE tbl = ? AND row_id = ?", arguments)
                    report.conflicts += connection.changes
                    for statement in ["DELETE FROM row_scopes WHERE tbl = ? AND row_id = ?", "DELETE FROM deliveries WHERE tbl = ? AND row_id = ?",
                                      "DELETE FROM evictions WHERE tbl = ? AND row_id = ?", "DELETE FROM views WHERE tbl = ? AND row_id = ?"] {
                        try connection.run(statement, arguments)
                    }
                    try connection.run("DELETE FROM audit WHERE instr(coalesce(subject, '') || ' ' || coalesce(detail, ''), ?) > 0", [.text(row.row)])
                    try connection.run("INSERT INTO erased_rows (tbl, row_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                                       [.text(row.table), .text(Erasure.erasedKey(row.row))])
                    for scope in scopes {
                        sequence += 1
                        try connection.run("INSERT INTO evictions (seq, tbl, row_id, scope, at_ms, kind) VALUES (?, ?, ?, ?, ?, 'purge')",
                                           [.integer(sequence), .text(row.table), .text(row.row), .text(scope), .integer(now)])
                    }
                    report.rowsByTable[row.table, default: 0] += 1
                }
                report.rows = rows.count
                report.attachments = try store.attachments.removeUnreferenced(content, connection)
                // Confirmed once a device comes back with a cursor past the last purge entry.
                try connection.run("UPDATE erasure_receipts SET purge_seq = ? WHERE subject = ? AND purge_seq = 0", [.integer(sequence), .text(subject)])
                try connection.run("UPDATE meta SET value = ? WHERE key = 'seq'", [.integer(sequence)])
                try connection.setMeta("erasing", .integer(0))
                if let postgres = connection as? PostgresStoreConnection { try postgres.announcePush(.everyone) }
                let summary = report.rowsByTable.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
                try store.audit.append(connection, actor: actor, action: action, subject: subject,
                          detail: "\(report.rows) rows (\(summary)), \(report.cells) cells, \(report.historyEntries) history entries"
                              + (report.attachments > 0 ? ", \(report.attachments) attachments" : ""))
            }
            switch connection.dialect {
            case .sqlite:
                try connection.execute("VACUUM")
                // Alone, so the log is truncated for certain (with the deleted bytes it still holds).
                if let checkpointer = store.checkpointer {
                    try checkpointer.paused { try connection.execute("PRAGMA wal_checkpoint(TRUNCATE)") }
                } else {
                    try connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                }
            case .postgresql:
                // Rewrites the tables without the deleted rows' old versions (briefly locking them).
                try connection.execute("VACUUM FULL records, row_links, history, conflicts, row_scopes, deliveries, evictions, views, audit, attachments, attachment_chunks, attachment_uploads")
            }
        }
        report.bytesAfter = Int64(store.sizeInBytes())
        return report
    }

    /// After a restore: rows erased since the backup was taken are erased again, so an erasure is
    /// never undone by restoring an older backup. `erased` are the hashed ids the store held before.
    func eraseAgain(_ erased: [(table: String, key: String)], actor: String) throws -> ErasureReport? {
        let wanted = Set(erased.map { "\($0.table) \($0.key)" })
        guard !wanted.isEmpty else { return nil }
        let tables = Set(erased.map(\.table))
        let report = try erase(actor: actor, subject: "restore", action: "erase.again") { connection in
            for entry in erased {
                try connection.run("INSERT INTO erased_rows (tbl, row_id) VALUES (?, ?) ON CONFLICT DO NOTHING", [.text(entry.table), .text(entry.key)])
            }
            var rows: [RowReference] = []
            for table in tables.sorted() {
                for id in try Records(connection, store: store).ids(of: table) where wanted.contains("\(table) \(Erasure.erasedKey(id))") {
                    rows.append(RowReference(table: table, row: id))
                }
            }
            return rows
        }
        return report
    }

    /// Whether a resident with this id was erased, and when and by whom.
    public func find(resident id: String) throws -> AuditEntry? {
        try store.audit.entries(subject: "sha256:" + Erasure.erasedKey(id)).first
    }
}

func fileSize(_ path: String) -> Int64 {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value ?? 0
}
