import KeukentafelProtocol

/// The records, links and history entries of a push, gathered and written many rows per statement.
/// A row whose cells change is written whole, once per flush however many of its cells changed
/// (decision 0020); consecutive changes to one row make one history entry (decision 0018).
///
/// One `INSERT` per change spent more time binding and stepping statements than SQLite spent in its
/// B-trees, and on PostgreSQL every statement is a round trip (decision 0016). So `PushContext` hands
/// its writes to this buffer and flushes it before anything reads `records`, `row_links` or `history`
/// in SQL. Its own reads of the rows it writes go through the row cache, which is always current.
struct PendingWrites {
    /// A change of the push's batch, by position (copying each change showed in profiles).
    struct LoggedChange {
        var index: Int
        var result: ChangeResult
    }

    /// Rows to write, in the order first touched; each holds the row cache's current cells.
    private var rows: [(address: PushContext.RowAddress, row: PushContext.CachedRow)] = []
    private var touched: Set<PushContext.RowAddress> = []
    /// Linked values that changed: the value the store's link has (NULL: none) and the last one written
    /// (NULL: remove the link). Links are keyed by value (decision 0033), so the old value finds the old link.
    private var links: [CellKey: (old: CellValue, new: CellValue)] = [:]
    private(set) var changes: [LoggedChange] = []
    /// Where each history entry starts in `changes`: a new one whenever the row differs from the last.
    private var entryStarts: [Int] = []
    /// The statements for a full buffer, prepared once per push (building and looking up their SQL
    /// for every flush showed in profiles).
    private var fullRecordsStatement: (any StoreStatement)?
    private var fullChangesStatement: (any StoreStatement)?
    private var recordBytes: [UInt8] = []
    private var historyBytes: [UInt8] = []

    /// The store's column numbers as this push found them (decision 0034).
    let columns: Numbering
    /// The devices' numbers as this push found them (decision 0036).
    let devices: Numbering
    /// Who made the push and when, for its history entries.
    let writer: HistoryWriter

    init(columns: Numbering, devices: Numbering, writer: HistoryWriter) {
        self.columns = columns
        self.devices = devices
        self.writer = writer
    }

    var isEmpty: Bool { rows.isEmpty && links.isEmpty && changes.isEmpty }

    /// Rows per statement: SQLite gains little beyond 64; PostgreSQL saves a round trip per row.
    static func rowsPerStatement(_ dialect: StoreDialect) -> Int { dialect == .sqlite ? 64 : 1_000 }

    /// Notes that `row`'s cells changed: its record is written with the next flush.
    mutating func write(_ address: PushContext.RowAddress, _ row: PushContext.CachedRow, _ connection: any StoreConnection) throws {
        // A batch's changes come row by row: most calls are for the row noted just before, known by
        // identity without hashing its address.
        if let last = rows.last, last.row === row { return }
        guard touched.insert(address).inserted else { return }
        rows.append((address, row))
        if rows.count >= Self.rowsPerStatement(connection.dialect) { try flushRecords(connection) }
    }

    /// Notes a linked column's change from `old` (what the store holds unless this flush changed it already) to `new`.
    mutating func link(_ key: CellKey, from old: CellValue, to new: CellValue) {
        links[key] = (links[key]?.old ?? old, new)
    }

    mutating func log(_ index: Int, result: ChangeResult, batch: [Change], _ connection: any StoreConnection) throws {
        let sameRow = changes.last.map { batch[$0.index].row == batch[index].row && batch[$0.index].table == batch[index].table } ?? false
        if !sameRow {
            if entryStarts.count == Self.rowsPerStatement(connection.dialect) {
                try flushChanges(batch: batch, connection)
            }
            entryStarts.append(changes.count)
        }
        changes.append(LoggedChange(index: index, result: result))
    }

    mutating func flush(batch: [Change], _ connection: any StoreConnection) throws {
        try flushRecords(connection)
        try flushLinks(connection)
        try flushChanges(batch: batch, connection)
    }

    mutating func flushRecords(_ connection: any StoreConnection) throws {
        guard !rows.isEmpty else { return }
        var start = 0
        while start < rows.count {
            let count = Self.statementRows(rows.count - start, connection.dialect)
            try writeRecords(start..<start + count, connection)
            start += count
        }
        rows.removeAll(keepingCapacity: true)
        touched.removeAll(keepingCapacity: true)
    }

    private mutating func writeRecords(_ range: Range<Int>, _ connection: any StoreConnection) throws {
        let full = range.count == Self.rowsPerStatement(connection.dialect)
        let stmt = try (full ? fullRecordsStatement : nil) ?? connection.cachedStatement(Self.insertSQL(
            into: "records (tbl, row_id, seq, n, cells)", columns: 5, rows: range.count,
            suffix: " ON CONFLICT (tbl, row_id) DO UPDATE SET seq = excluded.seq, n = excluded.n, cells = excluded.cells"))
        if full { fullRecordsStatement = stmt }
        var at: Int32 = 0
        for (address, row) in rows[range] {
            var sequence: Int64 = 0
            for cell in row.cells.values where cell.sequence > sequence { sequence = cell.sequence }
            recordBytes.removeAll(keepingCapacity: true)
            RowCoding.write(row.cells, columns: columns, devices: devices, to: &recordBytes)
            try stmt.bind(address.table, at: at + 1)
            try stmt.bind(address.row, at: at + 2)
            try stmt.bind(sequence, at: at + 3)
            try stmt.bind(Int64(row.cells.count), at: at + 4)
            try stmt.bind(bytes: recordBytes, at: at + 5)
            at += 5
        }
        try stmt.run()
    }

    /// Writes the linked values (rare beside the records: a few columns of some rows).
    mutating func flushLinks(_ connection: any StoreConnection) throws {
        guard !links.isEmpty else { return }
        for (key, change) in links where change.old != .null && change.old != change.new {
            try connection.run("DELETE FROM row_links WHERE value = ? AND tbl = ? AND col = ? AND row_id = ?",
                               [change.old, .text(key.table), .text(key.column), .text(key.row)])
        }
        let set = links.compactMap { key, change in change.new != .null && change.new != change.old ? (key, change.new) : nil }
            .sorted { ($0.0.table, $0.0.row, $0.0.column) < ($1.0.table, $1.0.row, $1.0.column) }
        var start = 0
        while start < set.count {
            let count = Self.statementRows(set.count - start, connection.dialect)
            let stmt = try connection.cachedStatement(Self.insertSQL(
                into: "row_links (tbl, row_id, col, value)", columns: 4, rows: count, suffix: " ON CONFLICT DO NOTHING"))
            var at: Int32 = 0
            for (key, value) in set[start..<start + count] {
                try stmt.bind(key.table, at: at + 1)
                try stmt.bind(key.row, at: at + 2)
                try stmt.bind(key.column, at: at + 3)
                try stmt.bind(value, at: at + 4)
                at += 4
            }
            try stmt.run()
            start += count
        }
        links.removeAll(keepingCapacity: true)
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

    mutating func flushChanges(batch: [Change], _ connection: any StoreConnection) throws {
        guard !changes.isEmpty else { return }
        var first = 0
        while first < entryStarts.count {
            let entries = Self.statementRows(entryStarts.count - first, connection.dialect)
            try writeEntries(first..<first + entries, batch: batch, connection)
            first += entries
        }
        changes.removeAll(keepingCapacity: true)
        entryStarts.removeAll(keepingCapacity: true)
    }

    private mutating func writeEntries(_ entries: Range<Int>, batch: [Change], _ connection: any StoreConnection) throws {
        let full = entries.count == Self.rowsPerStatement(connection.dialect)
        let stmt = try (full ? fullChangesStatement : nil) ?? connection.cachedStatement(Self.insertSQL(
            into: "history (tbl, row_id, device_no, device, received_ms, n, changes)", columns: 7, rows: entries.count, suffix: ""))
        if full { fullChangesStatement = stmt }
        var at: Int32 = 0
        try batch.withUnsafeBufferPointer { batch in
            for entry in entries {
                let start = entryStarts[entry]
                let end = entry + 1 < entryStarts.count ? entryStarts[entry + 1] : changes.count
                let first = batch.baseAddress! + changes[start].index  // read in place, not copied
                historyBytes.removeAll(keepingCapacity: true)
                HistoryCoding.write(changes[start..<end].lazy.map { logged in
                    let change = batch.baseAddress! + logged.index
                    return RecordedChange(id: change.pointee.id, column: change.pointee.column, value: change.pointee.value,
                                          version: change.pointee.version, base: change.pointee.base, status: logged.result.status,
                                          won: logged.result.won, conflict: logged.result.conflict)
                }, columns: columns, to: &historyBytes)
                try stmt.bind(first.pointee.table, at: at + 1)
                try stmt.bind(first.pointee.row, at: at + 2)
                try stmt.bind(writer.number.map(CellValue.integer) ?? .null, at: at + 3)
                try stmt.bind(writer.name.map(CellValue.text) ?? .null, at: at + 4)
                try stmt.bind(writer.milliseconds, at: at + 5)
                try stmt.bind(Int64(end - start), at: at + 6)
                try stmt.bind(bytes: historyBytes, at: at + 7)
                at += 7
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
