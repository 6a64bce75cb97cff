import KeukentafelProtocol

extension StoreSchema {
    /// Moves a store of the per-cell layout (one `cells` row per cell, before decision 0020) to one
    /// record per row: the cells of each row become its record, `row_links` is rebuilt from them when
    /// the store opens (`RowLinks.prepare`), and `cells` with its indexes is dropped. Inside the
    /// caller's transaction, so a crash leaves the old layout or the new one, never a mix.
    static func migrateCells(_ connection: any StoreConnection) throws {
        guard try hasTable("cells", connection) else { return }
        let read = try connection.cachedStatement("SELECT tbl, row_id, col, value, hlc, node, seq, device FROM cells ORDER BY tbl, row_id")
        defer { read.reset() }
        let insert = try connection.cachedStatement("INSERT INTO records (tbl, row_id, seq, n, cells) VALUES (?, ?, ?, ?, ?)")
        var current: (table: String, row: String)?
        var cells: RowCells = [:]
        func writeRecord() throws {
            guard let current, !cells.isEmpty else { return }
            try insert.bind([.text(current.table), .text(current.row), .integer(cells.values.map(\.sequence).max() ?? 0),
                             .integer(Int64(cells.count))])
            try insert.bind(bytes: RowCoding.encode(cells, columns: .none, devices: .none), at: 5)
            try insert.run()
            cells.removeAll(keepingCapacity: true)
        }
        while try read.step() {
            guard let table = read.text(0), let row = read.text(1), let column = read.text(2),
                  let version = CellVersion(hlc: read.value(4), node: read.value(5)) else {
                throw StoreError.corrupt("a cell of the per-cell layout has no table, row, column or valid version")
            }
            if current.map({ $0.table != table || $0.row != row }) ?? true {
                try writeRecord()
                current = (table, row)
            }
            cells[column] = StoredCell(value: VersionedValue(value: read.value(3), version: version), device: read.text(7),
                                       sequence: read.int64(6))
        }
        try writeRecord()
        try connection.execute("DROP TABLE cells")
        try connection.run("DELETE FROM meta WHERE key = 'reference_index'")
    }
}
