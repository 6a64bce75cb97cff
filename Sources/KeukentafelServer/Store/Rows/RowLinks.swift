import KeukentafelProtocol

/// The columns whose values the store looks rows up by, kept in `row_links (tbl, row_id, col, value)`
/// beside the records (decision 0020): every reference column (scope propagation, the erasure, the
/// audit's "everything about this resident"), the columns of unique keys (duplicate checks) and
/// attachment columns (which rows refer to some content: who may download it, what an erasure removes).
/// A row's link is written with its record and removed when the value becomes NULL.
struct RowLinks: Sendable {
    /// Per table, its linked columns.
    let columns: [String: Set<String>]
    /// A text naming every linked column: when the model changes it, the links are rebuilt.
    let definition: String

    init(_ model: DataModel) {
        var columns: [String: Set<String>] = [:]
        for table in model.tables {
            for column in table.columns where column.type == .reference || column.type == .attachment {
                columns[table.name, default: []].insert(column.name)
            }
            for key in table.unique ?? [] { columns[table.name, default: []].formUnion(key.columns) }
        }
        self.columns = columns
        self.definition = columns.sorted { $0.key < $1.key }.map { "\($0.key)(\($0.value.sorted().joined(separator: ",")))" }.joined(separator: " ")
    }

    func isLinked(table: String, column: String) -> Bool {
        columns[table]?.contains(column) ?? false
    }

    /// Makes `row_links` match the records for this model: rebuilt from every record when the set of
    /// linked columns differs from the one the links were made for (a new model, or a store migrated
    /// from the per-cell layout). Inside the caller's write transaction.
    func prepare(_ connection: any StoreConnection, columns names: NumberedNames, devices: NumberedNames) throws {
        guard try connection.scalar("SELECT value FROM meta WHERE key = 'row_links'")?.string != definition else { return }
        try connection.run("DELETE FROM row_links")
        let insert = try connection.cachedStatement("INSERT INTO row_links (tbl, row_id, col, value) VALUES (?, ?, ?, ?)")
        let read = try connection.cachedStatement("SELECT row_id, cells FROM records WHERE tbl = ?")
        for table in columns.keys.sorted() {
            let linked = columns[table] ?? []
            var links: [(row: String, column: String, value: CellValue)] = []
            try read.bind(table, at: 1)
            while try read.step() {
                guard let row = read.text(0) else { continue }
                try read.withBytes(1) { bytes in
                    try RowCoding.forEachCell(in: bytes, columns: names, devices: devices) { column, cell in
                        if linked.contains(column), cell.value.value != .null { links.append((row, column, cell.value.value)) }
                    }
                }
            }
            read.reset()
            for link in links {
                try insert.bind([.text(table), .text(link.row), .text(link.column), link.value])
                try insert.run()
            }
        }
        try connection.setMeta("row_links", .text(definition))
    }
}
