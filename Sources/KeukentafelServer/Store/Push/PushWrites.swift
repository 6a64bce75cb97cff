import KeukentafelProtocol

/// The cell writes and history entries of a push, gathered and written many rows per statement.
///
/// One `INSERT` per change spent more time binding and stepping statements than SQLite spent in its
/// B-trees, and on PostgreSQL every statement is a round trip (decision 0016). So `PushContext` hands
/// its writes to this buffer and flushes it before anything reads `cells` or `changes` in SQL. Its
/// own reads of the rows it writes go through the row cache, which is always current.
struct PendingWrites {
    struct CellWrite {
        var key: CellKey
        var value: VersionedValue
        var sequence: Int64
        var device: String
    }

    /// A change of the push's batch, by position (copying each change showed in profiles).
    struct LoggedChange {
        var index: Int
        var result: ChangeResult
    }

    private(set) var cells: [CellWrite] = []
    private(set) var changes: [LoggedChange] = []
    /// PostgreSQL refuses an upsert that touches one row twice, so there a cell written twice flushes
    /// first. SQLite applies the rows of one statement in order, which is what a second write means.
    private var cellKeys: Set<CellKey> = []
    /// The statements for a full buffer, prepared once per push (building and looking up their SQL
    /// for every flush showed in profiles).
    private var fullCellsStatement: (any StoreStatement)?
    private var fullChangesStatement: (any StoreStatement)?

    var isEmpty: Bool { cells.isEmpty && changes.isEmpty }

    /// Rows per statement: SQLite gains little beyond 64; PostgreSQL saves a round trip per row.
    static func rowsPerStatement(_ dialect: StoreDialect) -> Int { dialect == .sqlite ? 64 : 1_000 }

    mutating func write(_ write: CellWrite, _ connection: any StoreConnection) throws {
        if connection.dialect == .postgresql, !cellKeys.insert(write.key).inserted {
            try flushCells(connection)
            cellKeys.insert(write.key)
        }
        cells.append(write)
        if cells.count >= Self.rowsPerStatement(connection.dialect) { try flushCells(connection) }
    }

    mutating func log(_ index: Int, result: ChangeResult, batch: [Change], device: String, receivedAt: String,
                      _ connection: any StoreConnection) throws {
        changes.append(LoggedChange(index: index, result: result))
        if changes.count >= Self.rowsPerStatement(connection.dialect) {
            try flushChanges(batch: batch, device: device, receivedAt: receivedAt, connection)
        }
    }

    mutating func flush(batch: [Change], device: String, receivedAt: String, _ connection: any StoreConnection) throws {
        try flushCells(connection)
        try flushChanges(batch: batch, device: device, receivedAt: receivedAt, connection)
    }

    mutating func flushCells(_ connection: any StoreConnection) throws {
        guard !cells.isEmpty else { return }
        let full = cells.count == Self.rowsPerStatement(connection.dialect)
        let stmt = try (full ? fullCellsStatement : nil) ?? connection.cachedStatement(Self.insertSQL(
            into: "cells (tbl, row_id, col, value, hlc, node, seq, device)", columns: 8, rows: cells.count,
            suffix: " ON CONFLICT (tbl, row_id, col) DO UPDATE SET value = excluded.value, hlc = excluded.hlc, "
                + "node = excluded.node, seq = excluded.seq, device = excluded.device"))
        if full { fullCellsStatement = stmt }
        var at: Int32 = 0
        for write in cells {
            try stmt.bind(write.key.table, at: at + 1)
            try stmt.bind(write.key.row, at: at + 2)
            try stmt.bind(write.key.column, at: at + 3)
            try stmt.bind(write.value.value, at: at + 4)
            try stmt.bind(Int64(bitPattern: write.value.version.hlc), at: at + 5)
            try stmt.bind(Int64(bitPattern: write.value.version.node.rawValue), at: at + 6)
            try stmt.bind(write.sequence, at: at + 7)
            try stmt.bind(write.device, at: at + 8)
            at += 8
        }
        try stmt.run()
        cells.removeAll(keepingCapacity: true)
        cellKeys.removeAll(keepingCapacity: true)
    }

    mutating func flushChanges(batch: [Change], device: String, receivedAt: String, _ connection: any StoreConnection) throws {
        guard !changes.isEmpty else { return }
        let full = changes.count == Self.rowsPerStatement(connection.dialect)
        let stmt = try (full ? fullChangesStatement : nil) ?? connection.cachedStatement(Self.insertSQL(
            into: "changes (change_id, tbl, row_id, col, value, hlc, node, base_hlc, base_node, device, received_at, status, won, conflict_id)",
            columns: 14, rows: changes.count, suffix: ""))
        if full { fullChangesStatement = stmt }
        var at: Int32 = 0
        try batch.withUnsafeBufferPointer { batch in
            for logged in changes {
                let result = logged.result
                let change = batch.baseAddress! + logged.index  // read in place, not copied
                try stmt.bind(change.pointee.id, at: at + 1)
                try stmt.bind(change.pointee.table, at: at + 2)
                try stmt.bind(change.pointee.row, at: at + 3)
                try stmt.bind(change.pointee.column, at: at + 4)
                try stmt.bind(change.pointee.value, at: at + 5)
                try stmt.bind(Int64(bitPattern: change.pointee.version.hlc), at: at + 6)
                try stmt.bind(Int64(bitPattern: change.pointee.version.node.rawValue), at: at + 7)
                try stmt.bind(change.pointee.base?.hlcValue ?? .null, at: at + 8)
                try stmt.bind(change.pointee.base?.nodeValue ?? .null, at: at + 9)
                try stmt.bind(device, at: at + 10)
                try stmt.bind(receivedAt, at: at + 11)
                try stmt.bind(result.status.rawValue, at: at + 12)
                try stmt.bind(result.won.map { .integer($0 ? 1 : 0) } ?? .null, at: at + 13)
                try stmt.bind(result.conflict.map(CellValue.integer) ?? .null, at: at + 14)
                at += 14
            }
        }
        try stmt.run()
        changes.removeAll(keepingCapacity: true)
    }

    /// `INSERT INTO <into> VALUES (?, …), (?, …)…<suffix>` for `rows` rows of `columns` values.
    static func insertSQL(into target: String, columns: Int, rows: Int, suffix: String) -> String {
        let row = "(?" + String(repeating: ", ?", count: columns - 1) + ")"
        var sql = "INSERT INTO \(target) VALUES "
        sql.reserveCapacity(sql.utf8.count + rows * (row.utf8.count + 2) + suffix.utf8.count)
        for index in 0..<rows {
            if index > 0 { sql += ", " }
            sql += row
        }
        return sql + suffix
    }
}
