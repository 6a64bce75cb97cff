import KeukentafelProtocol

/// Reading the current state of synced rows: one record per row in `records` (decision 0020), and the
/// rows that hold a value in a linked column (`row_links`: references and unique keys).
///
/// Every read of current state outside the push's own row cache goes through here, so the layout is
/// known in one place. Ids are read per table in windows of `PushContext.windowSize`, padded as
/// `PushContext.idListPlaceholders` makes them (few statement shapes on PostgreSQL).
struct Records {
    let connection: any StoreConnection
    let columns: NumberedNames
    let devices: NumberedNames

    init(_ connection: any StoreConnection, columns: NumberedNames, devices: NumberedNames) {
        self.connection = connection
        self.columns = columns
        self.devices = devices
    }

    /// Reading `store`'s records (its numbers for columns and devices).
    init(_ connection: any StoreConnection, store: ServerStore) {
        self.init(connection, columns: store.columnNames, devices: store.deviceNumbers)
    }

    /// The cells of one row, or `nil` if the store has no record of it.
    func cells(table: String, row: String) throws -> RowCells? {
        let stmt = try connection.literalStatement("SELECT cells FROM records WHERE tbl = ? AND row_id = ?")
        defer { stmt.reset() }
        try stmt.bind(table, at: 1)
        try stmt.bind(row, at: 2)
        guard try stmt.step() else { return nil }
        return try stmt.withBytes(0) { try RowCoding.decode($0, columns: columns, devices: devices) }
    }

    /// The cells of those of `rows` the store has, by row id.
    func cells(table: String, rows: [String]) throws -> [String: RowCells] {
        var found: [String: RowCells] = [:]
        try select("row_id, cells", from: "records", table: table, rows: rows) { stmt in
            guard let row = stmt.text(0), let cells = try stmt.withBytes(1, { try RowCoding.decode($0, columns: columns, devices: devices) }) else { return }
            found[row] = cells
        }
        return found
    }

    /// One cell's current value, or `nil` if the row or the cell was never written.
    func value(table: String, row: String, column: String) throws -> CellValue? {
        try cells(table: table, row: row)?[column]?.value.value
    }

    /// Which of `rows` the store has a record of.
    func existing(table: String, rows: [String]) throws -> Set<String> {
        var found = Set<String>()
        try select("row_id", from: "records", table: table, rows: rows) { stmt in
            if let row = stmt.text(0) { found.insert(row) }
        }
        return found
    }

    /// Every row id of `table`.
    func ids(of table: String) throws -> [String] {
        try connection.query("SELECT row_id FROM records WHERE tbl = ? ORDER BY row_id", [.text(table)]).compactMap { $0[0].string }
    }

    /// The number of cells of a row (live or deleted); 0 if there is no record.
    func cellCount(table: String, row: String) throws -> Int {
        Int(try connection.scalar("SELECT n FROM records WHERE tbl = ? AND row_id = ?", [.text(table), .text(row)])?.int64 ?? 0)
    }

    /// Ids of the rows of `table` whose linked `column` holds any of `values`, in id order.
    func rows(of table: String, whose column: String, isAnyOf values: [CellValue]) throws -> [String] {
        var rows: [String] = []
        try inWindows(values) { window in
            let stmt = try connection.cachedStatement(
                "SELECT row_id FROM row_links WHERE value IN " + PushContext.idListPlaceholders(window.count) + " AND tbl = ? AND col = ?")
            defer { stmt.reset() }
            var at: Int32 = 1
            for value in window { try stmt.bind(value, at: at); at += 1 }
            for _ in window.count..<PushContext.idListSize(window.count) { try stmt.bind(window.last!, at: at); at += 1 }
            try stmt.bind(table, at: at)
            try stmt.bind(column, at: at + 1)
            while try stmt.step() { if let row = stmt.text(0) { rows.append(row) } }
        }
        return rows.sorted()
    }

    /// Ids of the rows of `table` whose linked `column` holds the id `target` (a visit of a case).
    func rows(of table: String, whose column: String, is target: String) throws -> [String] {
        try rows(of: table, whose: column, isAnyOf: [.text(target)])
    }

    /// Steps through `SELECT <columns> FROM <source> WHERE tbl = ? AND row_id IN (…)` for `rows` of
    /// `table`, one statement per window, calling `each` on every result row (any per-row table:
    /// `records`, `row_scopes`).
    func select(_ columns: String, from source: String, table: String, rows: [String],
                _ each: (any StoreStatement) throws -> Void) throws {
        try inWindows(rows) { window in
            let stmt = try connection.cachedStatement(
                "SELECT \(columns) FROM \(source) WHERE tbl = ? AND row_id IN " + PushContext.idListPlaceholders(window.count))
            defer { stmt.reset() }
            try stmt.bind(table, at: 1)
            try PushContext.bindIDs(window, to: stmt, from: 2)
            while try stmt.step() { try each(stmt) }
        }
    }

    private func inWindows<Element>(_ items: [Element], _ body: (ArraySlice<Element>) throws -> Void) throws {
        for start in stride(from: 0, to: items.count, by: PushContext.windowSize) {
            try body(items[start..<min(start + PushContext.windowSize, items.count)])
        }
    }
}
