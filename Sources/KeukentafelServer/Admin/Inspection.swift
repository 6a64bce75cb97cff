import Foundation
import KeukentafelProtocol
import KeukentafelSQLite

/// Cells, history and counts as the store holds them, for the office (`ktd admin history`) and the tests.
public struct Inspection: Sendable {
    let store: ServerStore

    init(store: ServerStore) { self.store = store }

    /// The current value and version of one cell, or `nil` if it was never written.
    public func cell(table: String, row: String, column: String) throws -> VersionedValue? {
        try store.reader.withConnection { connection in
            try Records(connection, store: store).cells(table: table, row: row)?[column]?.value
        }
    }

    /// Whether the row exists and is not deleted (the same rule the push path applies).
    public func rowIsLive(table: String, row: String) throws -> Bool {
        try store.reader.withConnection { connection in
            let cells = try Records(connection, store: store).cells(table: table, row: row) ?? [:]
            let state = PushContext.RowState(cells)
            return state.newestOther != nil && !state.isDeleted
        }
    }

    /// Every accepted write of a row (or of one of its cells), oldest first.
    public func history(table: String, row: String, column: String? = nil) throws -> [HistoryEntry] {
        try store.reader.withConnection { connection in
            var entries: [HistoryEntry] = []
            let read = try connection.cachedStatement("""
                SELECT h.changes, coalesce(d.id, h.device), h.received_ms, d.name
                FROM history h LEFT JOIN devices d ON d.no = h.device_no WHERE h.tbl = ? AND h.row_id = ? ORDER BY h.id
                """)
            defer { read.reset() }
            try read.bind([.text(table), .text(row)])
            while try read.step() {
                for change in try read.withBytes(0, { try HistoryCoding.decode($0, columns: store.columnNames) }) ?? [] where column == nil || change.column == column {
                    entries.append(HistoryEntry(changeID: change.id, column: change.column, value: change.value, version: change.version,
                                                device: read.text(1), deviceName: read.text(3), receivedAt: iso8601(read.int64(2)),
                                                status: change.status.rawValue, won: change.won))
                }
            }
            // Oldest first by version; arrival order among equal versions (a value re-sent after a restore).
            return entries.enumerated().sorted { ($0.element.version, $0.offset) < ($1.element.version, $1.offset) }.map(\.element)
        }
    }

    /// The number of cells (live or deleted) of a row.
    public func cellCount(table: String, row: String) throws -> Int {
        try store.reader.withConnection { connection in
            try Records(connection, store: store).cellCount(table: table, row: row)
        }
    }

    /// A row and every row whose scopes derive from it (a case: its visits, notes, plans and goals,
    /// its resident and what hangs off the resident), by the data model's scope rules.
    public func rowsTakingScopes(from root: RowReference) throws -> [RowReference] {
        try store.reader.withConnection { connection in
            var found: [RowReference] = []
            var seen = Set<RowReference>()
            var queue = [root]
            while let next = queue.popLast() {
                guard seen.insert(next).inserted else { continue }
                found.append(next)
                for dependent in store.scopePlan.dependents[next.table] ?? [] {
                    switch dependent {
                    case .children(let table, let column):
                        for child in try Records(connection, store: store).rows(of: table, whose: column, is: next.row) {
                            queue.append(RowReference(table: table, row: child))
                        }
                    case .referenced(let table, let column):
                        if let target = try Records(connection, store: store).value(table: next.table, row: next.row, column: column)?.string {
                            queue.append(RowReference(table: table, row: target))
                        }
                    }
                }
            }
            return found
        }
    }

    /// Rows per store table, for tests and `ktd admin` summaries: `records` (synced rows), `cells` (the
    /// cells those records hold), `conflicts`, `devices`,
    /// `history` (entries: the changes one push made to one row) and `changes` (the accepted changes
    /// those entries hold).
    public func counts() throws -> [String: Int64] {
        try store.reader.withConnection { connection in
            var result: [String: Int64] = [:]
            for table in ["records", "history", "conflicts", "devices"] {
                result[table] = try connection.scalar("SELECT count(*) FROM \(table)")?.int64 ?? 0
            }
            result["cells"] = try connection.scalar("SELECT CAST(coalesce(sum(n), 0) AS BIGINT) FROM records")?.int64 ?? 0
            result["changes"] = try connection.scalar("SELECT CAST(coalesce(sum(n), 0) AS BIGINT) FROM history")?.int64 ?? 0
            return result
        }
    }

    /// How many writes (a cell of a row at one version) the history holds more than once: 0 unless a
    /// retried push was stored twice. For the torture test.
    public func duplicatedWrites() throws -> Int {
        try store.reader.withConnection { connection in
            struct Write: Hashable { var table: String, row: String, column: String, version: CellVersion }
            var seen = Set<Write>()
            var duplicated = Set<Write>()
            let read = try connection.cachedStatement("SELECT tbl, row_id, changes FROM history")
            defer { read.reset() }
            while try read.step() {
                guard let table = read.text(0), let row = read.text(1) else { continue }
                for change in try read.withBytes(2, { try HistoryCoding.decode($0, columns: store.columnNames) }) ?? [] {
                    let write = Write(table: table, row: row, column: change.column, version: change.version)
                    if !seen.insert(write).inserted { duplicated.insert(write) }
                }
            }
            return duplicated.count
        }
    }
}
