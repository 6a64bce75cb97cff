import KeukentafelProtocol

/// The cell writes and history entries of a push, gathered and written many rows per statement.
/// Consecutive changes to one row make one history entry (decision 0018).
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
    /// Where each history entry starts in `changes`: a new one whenever the row differs from the last.
    private var entryStarts: [Int] = []
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
        let sameRow = changes.last.map { batch[$0.index].row == batch[index].row && batch[$0.index].table == batch[index].table } ?? false
        if !sameRow {
            if entryStarts.count == Self.rowsPerStatement(connection.dialect) {
                try flushChanges(batch: batch, device: device, receivedAt: receivedAt, connection)
            }
            entryStarts.append(changes.count)
        }
        changes.append(LoggedChange(index: index, result: result))
    }

    mutating func flush(batch: [Change], device: String, receivedAt: String, _ connection: any StoreConnection) throws {
        try flushCells(connection)
        try flushChanges(batch: batch, device: device, receivedAt: receivedAt, connection)
    }

    mutating func flushCells(_ connection: any StoreConnection) throws {
        guard !cells.isEmpty else { return }
        var start = 0
        while start < cells.count {
            let rows = Self.statementRows(cells.count - start, connection.dialect)
            try writeCells(start..<start + rows, connection)
            start += rows
        }
        cells.removeAll(keepingCapacity: true)
        cellKeys.removeAll(keepingCapacity: true)
    }

    private mutating func writeCells(_ range: Range<Int>, _ connection: any StoreConnection) throws {
        let full = range.count == Self.rowsPerStatement(connection.dialect)
        let stmt = try (full ? fullCellsStatement : nil) ?? connection.cachedStatement(Self.insertSQL(
            into: "cells (tbl, row_id, col, value, hlc, node, seq, device)", columns: 8, rows: range.count,
            suffix: " ON CONFLICT (tbl, row_id, col) DO UPDATE SET value = excluded.value, hlc = excluded.hlc, "
                + "node = excluded.node, seq = excluded.seq, device = excluded.device"))
        if full { fullCellsStatement = stmt }
        var at: Int32 = 0
        for write in cells[range] {
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
    }

    /// How many of `remaining` buffered rows the next statement writes. On PostgreSQL a statement of a
    /// row count not seen before costs a parse and a round trip to learn its parameter types, so a
    /// partial buffer goes in statements of power-of-two sizes (at most ten, each prepared once per
    /// connection). SQLite prepares any size cheaply.
    static func statementRows(_ remaining: Int, _ dialect: StoreDialect) -> Int {
        let full = rowsPerStatement(dialect)
        if remaining >= full || dialect == .sqlite { return min(remaining, full) }
        var rows = 1
        while rows * 2 <= remaining { rows *= 2 }
        return rows
    }

    mutating func flushChanges(batch: [Change], device: String, receivedAt: String, _ connection: any StoreConnection) throws {
        guard !changes.isEmpty else { return }
        var first = 0
        while first < entryStarts.count {
            let entries = Self.statementRows(entryStarts.count - first, connection.dialect)
            try writeEntries(first..<first + entries, batch: batch, device: device, receivedAt: receivedAt, connection)
            first += entries
        }
        changes.removeAll(keepingCapacity: true)
        entryStarts.removeAll(keepingCapacity: true)
    }

    private mutating func writeEntries(_ entries: Range<Int>, batch: [Change], device: String, receivedAt: String,
                                       _ connection: any StoreConnection) throws {
        let full = entries.count == Self.rowsPerStatement(connection.dialect)
        let stmt = try (full ? fullChangesStatement : nil) ?? connection.cachedStatement(Self.insertSQL(
            into: "history (tbl, row_id, device, received_at, n, changes)", columns: 6, rows: entries.count, suffix: ""))
        if full { fullChangesStatement = stmt }
        var at: Int32 = 0
        var writer = JSONWriter(capacity: 1_024)
        try batch.withUnsafeBufferPointer { batch in
            for entry in entries {
                let start = entryStarts[entry]
                let end = entry + 1 < entryStarts.count ? entryStarts[entry + 1] : changes.count
                let first = batch.baseAddress! + changes[start].index  // read in place, not copied
                writer.bytes.removeAll(keepingCapacity: true)
                HistoryCoding.write(changes[start..<end].lazy.map { logged in
                    let change = batch.baseAddress! + logged.index
                    return RecordedChange(id: change.pointee.id, column: change.pointee.column, value: change.pointee.value,
                                          version: change.pointee.version, base: change.pointee.base, status: logged.result.status,
                                          won: logged.result.won, conflict: logged.result.conflict)
                }, to: &writer)
                try stmt.bind(first.pointee.table, at: at + 1)
                try stmt.bind(first.pointee.row, at: at + 2)
                try stmt.bind(device, at: at + 3)
                try stmt.bind(receivedAt, at: at + 4)
                try stmt.bind(Int64(end - start), at: at + 5)
                try stmt.bind(String(decoding: writer.bytes, as: UTF8.self), at: at + 6)
                at += 6
            }
        }
        try stmt.run()
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
