import Foundation
import KeukentafelClient
import KeukentafelProtocol

/// Short forms for tests.
extension Replica {
    /// Pushes and pulls once, over `transport` (e.g. a `TestNetwork`) or the real network.
    @discardableResult
    public func sync(transport: (any SyncTransport)? = nil, pageSize: Int? = nil) async throws -> SyncReport {
        let engine = try transport.map { SyncEngine(replica: self, transport: $0) } ?? SyncEngine(replica: self)
        if let pageSize { engine.pageSize = pageSize }
        return try await engine.sync()
    }

    /// One cell's value, or nil when the row is not on this replica.
    public func value(_ table: String, _ id: String, _ column: String) throws -> CellValue? {
        try query("SELECT \"\(column)\" FROM \"\(table)\" WHERE id = ?", [.text(id)]).rows.first?.first
    }

    /// How many rows of `table` this replica holds.
    public func rowCount(_ table: String) throws -> Int {
        guard case .integer(let n)? = try query("SELECT count(*) FROM \"\(table)\"").rows.first?.first else { return -1 }
        return Int(n)
    }

    /// Every synced table's rows, sorted by id: two replicas that converged have equal snapshots.
    public func snapshot() throws -> [String: [[CellValue]]] {
        var result: [String: [[CellValue]]] = [:]
        for table in dataModel.tables {
            result[table.name] = try query("SELECT * FROM \"\(table.name)\" ORDER BY id").rows
        }
        return result
    }
}
