import KeukentafelProtocol
import KeukentafelSQLite

/// The database a `ServerStore` runs on.
public enum StoreDialect: String, Sendable {
    case sqlite
    case postgresql
}

/// One connection to the store's database: embedded SQLite or PostgreSQL (decision 0013).
///
/// The store writes its SQL once, in the subset both databases understand (`?` placeholders,
/// `INSERT … ON CONFLICT`, `RETURNING`); cell values, which SQLite types per value, are kept in
/// PostgreSQL as tagged `bytea` (see `PostgresStoreConnection`). A connection is not thread-safe;
/// the store guards each with a lock.
public protocol StoreConnection: AnyObject {
    var dialect: StoreDialect { get }
    /// Runs SQL that returns no rows and takes no arguments (one or more statements).
    func execute(_ sql: String) throws
    /// A statement kept for the life of the connection, ready to bind (SQL written as a literal).
    func literalStatement(_ sql: StaticString) throws -> any StoreStatement
    /// A statement kept for the life of the connection, ready to bind.
    func cachedStatement(_ sql: String) throws -> any StoreStatement
    /// Runs `body` in a transaction; inside another, a savepoint. `immediate` takes the store's single
    /// write lock at once: writers run one at a time, so sequence numbers are handed out in commit order.
    /// Otherwise the transaction is a read-only snapshot.
    func transaction<T>(immediate: Bool, _ body: () throws -> T) throws -> T
    /// Every row of a query.
    func query(_ sql: String, _ arguments: [CellValue]) throws -> [[CellValue]]
    /// The first column of the first row, or `nil`.
    func scalar(_ sql: String, _ arguments: [CellValue]) throws -> CellValue?
    /// Runs a statement that returns no rows.
    func run(_ sql: String, _ arguments: [CellValue]) throws
    /// Rows changed by the last statement.
    var changes: Int { get }
    /// Runs a statement whose last parameter is `bytes`, bound as a BLOB (SQLite) or `bytea` (PostgreSQL):
    /// the content of attachments, which no cell value holds.
    func run(_ sql: String, _ arguments: [CellValue], bytes: [UInt8]) throws
    /// The first column of the first row as bytes (a BLOB or `bytea` column), or `nil`.
    func bytes(_ sql: String, _ arguments: [CellValue]) throws -> [UInt8]?
}

extension StoreConnection {
    func transaction<T>(_ body: () throws -> T) throws -> T { try transaction(immediate: true, body) }
    func query(_ sql: String) throws -> [[CellValue]] { try query(sql, []) }
    func scalar(_ sql: String) throws -> CellValue? { try scalar(sql, []) }
    func run(_ sql: String) throws { try run(sql, []) }

    /// Inserts or replaces one entry of the `meta` table.
    func setMeta(_ key: String, _ value: CellValue) throws {
        try run("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [.text(key), value])
    }
}

/// A statement: bind with 1-based positions or an array in order, step through rows, read columns.
public protocol StoreStatement: AnyObject {
    func reset()
    func bind(_ values: [CellValue]) throws
    func bind(_ value: CellValue, at index: Int32) throws
    func bind(_ value: Int64, at index: Int32) throws
    func bind(_ value: String, at index: Int32) throws
    /// Binds bytes as a BLOB (SQLite) or raw `bytea` (PostgreSQL): a row's record, attachment content.
    func bind(bytes: [UInt8], at index: Int32) throws
    /// Advances to the next row: `true` when a row is available.
    @discardableResult func step() throws -> Bool
    /// Runs the statement to completion, ignoring rows.
    func run() throws
    func value(_ index: Int32) -> CellValue
    func int64(_ index: Int32) -> Int64
    func isNull(_ index: Int32) -> Bool
    func text(_ index: Int32) -> String?
    /// Calls `body` with a BLOB / `bytea` column's bytes, valid only inside `body`; `nil` for NULL.
    func withBytes<R>(_ index: Int32, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R?
}

extension SQLiteStatement: StoreStatement {}

extension SQLiteConnection: StoreConnection {
    /// SQLite.
    public var dialect: StoreDialect { .sqlite }

    /// A statement prepared once per connection.
    public func literalStatement(_ sql: StaticString) throws -> any StoreStatement { try statement(sql) }

    /// A statement kept in the connection's cache.
    public func cachedStatement(_ sql: String) throws -> any StoreStatement { try cached(sql) }

    public func run(_ sql: String, _ arguments: [CellValue], bytes: [UInt8]) throws {
        let statement = try cached(sql)
        defer { statement.reset() }
        try statement.bind(arguments)
        try statement.bind(bytes: bytes, at: Int32(arguments.count + 1))
        try statement.run()
    }

    public func bytes(_ sql: String, _ arguments: [CellValue]) throws -> [UInt8]? {
        let statement = try cached(sql)
        defer { statement.reset() }
        try statement.bind(arguments)
        return try statement.step() ? statement.bytes(0) : nil
    }
}
