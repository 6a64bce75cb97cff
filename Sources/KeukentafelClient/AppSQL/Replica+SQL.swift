import Foundation
import KeukentafelProtocol
import KeukentafelSQLite

/// The result of one statement of a script (`Replica.executeScript`).
public struct StatementResult: Sendable {
    /// The statement as written.
    public var sql: String
    /// Column names; empty for a statement that returns no rows (a write).
    public var columns: [String]
    public var rows: [[CellValue]]
    /// Rows inserted, updated or deleted by a write (0 for a query).
    public var changes: Int
    public var isQuery: Bool { !columns.isEmpty }
    /// Rows of scoped (non-reference) synced tables the result shows, known by their `id` column in
    /// the result: what to record as viewed (`recordViews`). Rows shown without their id are not known.
    public var rowsShown: [RowReference] = []
}

/// The app's SQL. Writes go through the one writer connection and are captured for the sync;
/// queries run on read connections (`ReadPool`) and never wait for a sync in progress. Both keep the
/// app out of the sync's bookkeeping (`AppAccess`).
extension Replica {
    /// Runs SQL that returns no rows. Without arguments it may hold several statements; with
    /// arguments it must be one (the arguments are bound to it). Writes to synced tables are captured.
    public func execute(_ sql: String, _ arguments: [CellValue] = []) throws {
        try appWrite {
            if arguments.isEmpty {
                try connection.execute(sql)
            } else {
                try refuseSeveralStatements(sql, connection, what: "execute with arguments")
                let statement = try appStatement(sql)
                try statement.bind(arguments)
                try statement.run()
            }
        }
    }

    /// Runs one query and returns its column names and rows.
    ///
    /// It reads the last committed state on a connection of its own, so it does not wait while a
    /// page is applied; inside `transaction { … }` it reads on the transaction's connection and sees
    /// the transaction's own writes.
    public func query(_ sql: String, _ arguments: [CellValue] = []) throws -> (columns: [String], rows: [[CellValue]]) {
        try appRead { connection in
            try refuseSeveralStatements(sql, connection, what: "query")
            let stmt = try connection.prepare(sql)
            try stmt.bind(arguments)
            let columns = (0..<stmt.columnCount).map { stmt.columnName($0) }
            var rows: [[CellValue]] = []
            while try stmt.step() { rows.append((0..<stmt.columnCount).map { stmt.value($0) }) }
            return (columns, rows)
        }
    }

    /// Runs several app writes atomically: all of them, or (when `body` throws) none.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try appWrite { try connection.transaction(body) }
    }

    /// Runs every statement of a script given by a person (`kt sql`), in one transaction: all of
    /// them, or, when one fails, none. Returns each statement's rows or count of changed rows.
    public func executeScript(_ sql: String) throws -> [StatementResult] {
        try appWrite {
            try connection.transaction {
                var results: [StatementResult] = []
                try connection.prepareEach(sql) { stmt in
                    let columns = (0..<stmt.columnCount).map { stmt.columnName($0) }
                    // Result columns that are the id of a scoped synced table.
                    let idColumns: [(index: Int, table: String)] = (0..<stmt.columnCount).compactMap { index in
                        guard let origin = stmt.columnOrigin(index), origin.column == "id",
                              let table = dataModel.table(named: origin.table), table.scope?.global != true else { return nil }
                        return (Int(index), origin.table)
                    }
                    let before = connection.totalChanges
                    var rows: [[CellValue]] = []
                    while try stmt.step() { rows.append((0..<stmt.columnCount).map { stmt.value($0) }) }
                    var shown: [RowReference] = []
                    var seen = Set<RowReference>()
                    for row in rows {
                        for column in idColumns {
                            guard case .text(let id) = row[column.index] else { continue }
                            let reference = RowReference(table: column.table, row: id)
                            if seen.insert(reference).inserted { shown.append(reference) }
                        }
                    }
                    // The statement's own rows; the capture triggers' writes are not the person's.
                    let changed = columns.isEmpty && connection.totalChanges != before ? connection.changes : 0
                    var text = stmt.sql
                    while text.hasSuffix(";") { text.removeLast() }
                    results.append(StatementResult(sql: text, columns: columns, rows: rows, changes: changed, rowsShown: shown))
                }
                guard !results.isEmpty else { throw ReplicaError.invalidSQL("there is no SQL statement to run (only white space or comments)") }
                return results
            }
        }
    }

    // MARK: Connections

    /// The writer, with the app's access rules on.
    func appWrite<T>(_ body: () throws -> T) throws -> T {
        try holdingWriter(appSQL: true) { try translatingDenial(connection) { try body() } }
    }

    /// A read connection, or the writer when this thread is inside a write of its own (a
    /// transaction must see what it wrote).
    func appRead<T>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        if lock.try() {
            defer { lock.unlock() }
            if lockDepth > 0 { return try appWrite { try body(connection) } }
        }
        return try readers.read { reader in try translatingDenial(reader) { try body(reader) } }
    }

    private func appStatement(_ sql: String) throws -> SQLiteStatement {
        if let statement = appStatements[sql] {
            statement.reset()
            return statement
        }
        let statement = try connection.prepare(sql)
        if appStatements.count > 64 { appStatements.removeAll() }  // an app that builds SQL by string
        appStatements[sql] = statement
        return statement
    }

    func refuseSeveralStatements(_ sql: String, _ connection: SQLiteConnection, what: String) throws {
        guard sql.utf8.contains(UInt8(ascii: ";")), try connection.holdsSeveralStatements(sql) else { return }
        throw ReplicaError.invalidSQL("\(what) runs one statement, and this SQL holds several; run them one by one "
                                      + "(or, without arguments, with execute)")
    }

    /// SQLite's "not authorized" becomes the reason `AppAccess` gave.
    func translatingDenial<T>(_ connection: SQLiteConnection, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as SQLiteError where error.code & 0xFF == 23 /* SQLITE_AUTH */ {
            if let reason = connection.takeDenial() { throw ReplicaError.notAllowed(reason) }
            throw error
        }
    }
}
