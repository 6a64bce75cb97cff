import KeukentafelProtocol

/// The store's numbers for column names (decision 0034): records and history entries name a column by
/// its number instead of spelling it in every cell, which on the real model was a fifth of the store.
///
/// Numbers are given when a store opens, to `_deleted` and to every column of its data model that has
/// none yet (the model only ever adds columns), and never change or go away: table `column_names`. A
/// column without a number (one the model does not have, e.g. written by `ktd admin` against another
/// model) is still stored, with its name spelled out. Another process on the same store (PostgreSQL,
/// or `ktd admin` next to `ktd serve`) may give numbers to a newer model's columns: a number this
/// process does not know makes it read the table again (`name(_:)`).
final class ColumnNames: Sendable {
    private let numbered: Locked<ColumnDictionary>
    /// Reads the table on a connection of its own (never one of the pools': a reader that misses a name
    /// may hold the last of them).
    private let reload: @Sendable () throws -> ColumnDictionary

    init(_ dictionary: ColumnDictionary, reload: @escaping @Sendable () throws -> ColumnDictionary) {
        numbered = Locked(dictionary)
        self.reload = reload
    }

    /// Numbers only as far as a store was read (for migrations that run before the model is known).
    static func fixed(_ dictionary: ColumnDictionary) -> ColumnNames { ColumnNames(dictionary) { dictionary } }

    /// The numbers known now, for a writer to look names up in without a lock per cell.
    var current: ColumnDictionary { numbered.withLock { $0 } }

    /// The name of column `number`, reading the table again if this process has not seen the number.
    func name(_ number: Int) throws -> String? {
        if let name = numbered.withLock({ $0.name(number) }) { return name }
        let fresh = try reload()
        return numbered.withLock { known in
            if fresh.names.count > known.names.count { known = fresh }
            return known.name(number)
        }
    }

    /// After a restore: the numbers of the store that was put back, which may lack some of this process's.
    func replace(with dictionary: ColumnDictionary) {
        numbered.withLock { $0 = dictionary }
    }

    /// Gives numbers to `columns` that have none (in this order, after the greatest), then reads the
    /// table. Call inside a writing transaction: on PostgreSQL its lock orders two processes opening at once.
    static func register(_ columns: [String], _ connection: any StoreConnection) throws -> ColumnDictionary {
        var dictionary = try read(connection)
        let insert = try connection.cachedStatement("INSERT INTO column_names (no, name) VALUES (?, ?)")
        for column in columns where dictionary.number(column) == nil {
            let number = dictionary.names.count + 1
            try insert.bind([.integer(Int64(number)), .text(column)])
            try insert.run()
            dictionary.add(column, number: number)
        }
        return dictionary
    }

    /// The table as it is.
    static func read(_ connection: any StoreConnection) throws -> ColumnDictionary {
        var dictionary = ColumnDictionary()
        for row in try connection.query("SELECT no, name FROM column_names ORDER BY no") {
            guard let number = row[0].int64, let name = row[1].string, number == Int64(dictionary.names.count + 1) else {
                throw StoreError.corrupt("table column_names does not number its names 1, 2, 3, … (at \(row[0]))")
            }
            dictionary.add(name, number: Int(number))
        }
        return dictionary
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

/// Column names and their numbers (1, 2, 3, …) as one process knows them at one moment.
struct ColumnDictionary: Sendable {
    private(set) var names: [String] = []
    private var numbers: [String: Int] = [:]

    /// No numbers: every column is spelled out.
    static let none = ColumnDictionary()

    init() {}

    /// `names` numbered 1, 2, 3, … in this order.
    init(_ names: [String]) {
        for (index, name) in names.enumerated() { add(name, number: index + 1) }
    }

    func number(_ name: String) -> Int? { numbers[name] }

    func name(_ number: Int) -> String? { number >= 1 && number <= names.count ? names[number - 1] : nil }

    fileprivate mutating func add(_ name: String, number: Int) {
        names.append(name)
        numbers[name] = number
    }
}
