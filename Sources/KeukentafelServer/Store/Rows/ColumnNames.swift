import KeukentafelProtocol

/// The store's numbers for column names (decision 0034): records and history entries name a column by
/// its number instead of spelling it in every cell, which on the real model was a fifth of the store.
///
/// Numbers are given when a store opens, to `_deleted` and to every column of its data model that has
/// none yet (the model only ever adds columns), and never change or go away: table `column_names`. A
/// column without a number (one the model does not have, e.g. written by `ktd admin` against another
/// model) is still stored, with its name spelled out. Another process on the same store (PostgreSQL,
/// or `ktd admin` next to `ktd serve`) may give numbers to a newer model's columns: `NumberedNames`
/// keeps them, and reads the table again for a number it does not know.
enum ColumnNames {
    /// Gives numbers to `columns` that have none (in this order, after the greatest), then reads the
    /// table. Call inside a writing transaction: on PostgreSQL its lock orders two processes opening at once.
    static func register(_ columns: [String], _ connection: any StoreConnection) throws -> Numbering {
        var numbering = try read(connection)
        let insert = try connection.cachedStatement("INSERT INTO column_names (no, name) VALUES (?, ?)")
        for column in columns where numbering.number(column) == nil {
            let number = numbering.greatest + 1
            try insert.bind([.integer(Int64(number)), .text(column)])
            try insert.run()
            numbering.add(column, number: number)
        }
        return numbering
    }

    /// The table as it is.
    static func read(_ connection: any StoreConnection) throws -> Numbering {
        var numbering = Numbering()
        for row in try connection.query("SELECT no, name FROM column_names ORDER BY no") {
            guard let number = row[0].int64, let name = row[1].string, number == Int64(numbering.greatest + 1) else {
                throw StoreError.corrupt("table column_names does not number its names 1, 2, 3, … (at \(row[0]))")
            }
            numbering.add(name, number: Int(number))
        }
        return numbering
    }

    /// The columns a store of `model` numbers: the deletion mark first, then every table's in the model's order.
    static func columns(of model: DataModel) -> [String] {
        var seen: Set<String> = [Merge.deletedColumn]
        var columns = [Merge.deletedColumn]
        for table in model.tables {
            for column in table.columns where seen.insert(column.name).inserted { columns.append(column.name) }
        }
        return columns
    }
}
