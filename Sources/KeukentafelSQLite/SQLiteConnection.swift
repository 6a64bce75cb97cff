import Foundation
import CSQLite
import KeukentafelProtocol

/// An error from SQLite, with the statement that caused it.
public struct SQLiteError: Error, CustomStringConvertible, Sendable {
    /// The primary SQLite result code, e.g. `SQLITE_CONSTRAINT` (19).
    public var code: Int32
    public var message: String
    public var sql: String?

    public var description: String {
        if let sql { return "\(message) (SQLite code \(code), in: \(sql.prefix(120)))" }
        return "\(message) (SQLite code \(code))"
    }

    /// True for SQLITE_BUSY / SQLITE_LOCKED: another connection holds the lock.
    public var isBusy: Bool { code & 0xFF == SQLITE_BUSY || code & 0xFF == SQLITE_LOCKED }

    /// SQLITE_IOERR_DATA: a page of an encrypted database failed authentication (wrong key, or damage).
    public var isUnreadablePage: Bool { code == SQLITE_IOERR | (32 << 8) }

    /// SQLITE_NOTADB: the file is no SQLite database (or an encrypted one opened without its key).
    public var isNotADatabase: Bool { code & 0xFF == SQLITE_NOTADB }
}

/// Process-wide SQLite settings, applied once before the first connection opens (SQLite refuses them
/// after it has initialized; then it keeps its defaults, which are correct, only slower).
private let sqliteConfigured: Bool = kt_sqlite_disable_memory_statistics() == SQLITE_OK

/// A thin, honest wrapper over one SQLite connection.
///
/// Keukentafel talks to SQLite through the C API directly (see docs/decisions/0002): the hot paths
/// (applying a pulled page, ingesting a pushed batch) are a handful of prepared statements, and the
/// replica needs custom SQL functions for its capture triggers. A connection is not thread-safe;
/// whoever shares one guards it with a lock.
public final class SQLiteConnection {
    public let path: String
    let handle: OpaquePointer
    private var statementCache: [String: SQLiteStatement] = [:]
    private var staticStatementCache: [UnsafeRawPointer: SQLiteStatement] = [:]
    private var savepointDepth = 0
    /// See `onWALCommit`.
    var walCommitHandler: ((Int32) -> Void)?
    /// The retained box of `setAuthorizer`, and the check it holds.
    var authorizerBox: UnsafeMutableRawPointer?
    var authorizerDecide: ((SQLiteAccess) -> SQLiteAccessVerdict)?
    let denialSlot = DenialSlot()
    /// See `trackChanges()`.
    var changeTracker: ChangeTracker?
    /// The key of an encrypted database, held for as long as SQLite may open its files (the WAL opens late).
    public let cipher: SQLiteCipherKey?

    /// Opens (and creates, unless `readOnly`) the database at `path`; encrypted with `cipher` if given
    /// (see `SQLiteCipherKey`; a new encrypted database needs `formatForCipher()` before anything else).
    public init(path: String, readOnly: Bool = false, cipher: SQLiteCipherKey? = nil) throws {
        _ = sqliteConfigured
        var db: OpaquePointer?
        var flags = (readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        var filename = path
        if let cipher {
            guard PageCipher.registered else {
                throw SQLiteError(code: SQLITE_ERROR, message: "cannot open '\(path)': the encryption VFS could not be registered", sql: nil)
            }
            filename = cipher.uri(for: path)
            flags |= SQLITE_OPEN_URI
        }
        let rc = sqlite3_open_v2(filename, &db, flags, cipher == nil ? nil : PageCipher.vfsName)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close_v2(db)
            throw SQLiteError(code: rc, message: "cannot open database '\(path)': \(message)", sql: nil)
        }
        self.path = path
        self.handle = db
        self.cipher = cipher
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, 10_000)
    }

    deinit {
        statementCache.removeAll()
        staticStatementCache.removeAll()
        sqlite3_close_v2(handle)
        if let authorizerBox { Unmanaged<AnyObject>.fromOpaque(authorizerBox).release() }
    }

    /// Runs one or more SQL statements that return no rows.
    public func execute(_ sql: String) throws {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        if rc != SQLITE_OK {
            let message = errorMessage.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(handle))
            sqlite3_free(errorMessage)
            throw SQLiteError(code: rc, message: message, sql: sql)
        }
    }

    /// Compiles a statement. Use `cached` for statements run many times.
    public func prepare(_ sql: String) throws -> SQLiteStatement {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, 0, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw error(rc, sql: sql) }
        return SQLiteStatement(handle: stmt, connection: self, sql: sql)
    }

    /// Compiles each statement of `sql` in turn (statements separated by ';'), for callers that run
    /// a script given by a person and must not drop what follows the first statement.
    public func prepareEach(_ sql: String, _ body: (SQLiteStatement) throws -> Void) throws {
        var utf8 = Array(sql.utf8CString)
        try utf8.withUnsafeMutableBufferPointer { buffer in
            guard let start = buffer.baseAddress else { return }
            var cursor = UnsafePointer(start)
            while cursor.pointee != 0 {
                var stmt: OpaquePointer?
                var tail: UnsafePointer<CChar>?
                let rc = sqlite3_prepare_v3(handle, cursor, -1, 0, &stmt, &tail)
                guard rc == SQLITE_OK else { throw error(rc, sql: String(cString: cursor)) }
                guard let next = tail else { sqlite3_finalize(stmt); break }
                defer { cursor = next }
                guard let stmt else { continue }  // only white space or a comment
                let length = cursor.distance(to: next)
                let statementText = String(decoding: UnsafeRawBufferPointer(start: cursor, count: length), as: UTF8.self)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                try body(SQLiteStatement(handle: stmt, connection: self, sql: statementText))
            }
        }
    }

    /// Whether `sql` holds more than one statement (a second one would be silently dropped by `prepare`).
    /// Only the first is compiled in full; anything after it but white space and comments counts.
    public func holdsSeveralStatements(_ sql: String) throws -> Bool {
        var utf8 = Array(sql.utf8CString)
        return try utf8.withUnsafeMutableBufferPointer { buffer -> Bool in
            guard let start = buffer.baseAddress else { return false }
            var cursor = UnsafePointer(start)
            var seen = 0
            while cursor.pointee != 0 {
                var stmt: OpaquePointer?
                var tail: UnsafePointer<CChar>?
                let rc = sqlite3_prepare_v3(handle, cursor, -1, 0, &stmt, &tail)
                sqlite3_finalize(stmt)
                if rc != SQLITE_OK {
                    if seen == 0 { throw error(rc, sql: sql) }
                    return true  // something follows that is not even valid SQL: still a second statement
                }
                if stmt != nil { seen += 1 }
                if seen > 1 { return true }
                guard let next = tail, next != cursor else { break }
                cursor = next
            }
            return false
        }
    }

    /// A prepared statement kept for the life of the connection, reset and ready to bind.
    ///
    /// Step it to the end, or call `reset()` when done: a statement left on a row keeps its read
    /// transaction open, and the connection would go on seeing an old snapshot.
    public func cached(_ sql: String) throws -> SQLiteStatement {
        if let stmt = statementCache[sql] {
            stmt.reset()
            return stmt
        }
        let stmt = try prepare(sql)
        statementCache[sql] = stmt
        return stmt
    }

    /// Like `cached(_:)`, for SQL written as a literal: looked up by the literal's address, not by hashing
    /// its text, which matters on paths that run a statement a million times.
    public func statement(_ sql: StaticString) throws -> SQLiteStatement {
        let key = UnsafeRawPointer(sql.utf8Start)
        if let stmt = staticStatementCache[key] {
            stmt.reset()
            return stmt
        }
        let stmt = try prepare(sql.description)
        staticStatementCache[key] = stmt
        return stmt
    }

    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws.
    /// `immediate` takes the write lock at once, so the body never fails half-way on a busy lock.
    /// Inside another transaction it becomes a savepoint: it rolls back alone, and commits with the outer one.
    public func transaction<T>(immediate: Bool = true, _ body: () throws -> T) throws -> T {
        if isInTransaction {
            savepointDepth += 1
            let name = "kt_savepoint_\(savepointDepth)"
            defer { savepointDepth -= 1 }
            try execute("SAVEPOINT \(name)")
            do {
                let result = try body()
                try execute("RELEASE \(name)")
                return result
            } catch {
                try? execute("ROLLBACK TO \(name); RELEASE \(name)")
                throw error
            }
        }
        try execute(immediate ? "BEGIN IMMEDIATE" : "BEGIN")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    /// Runs a query and collects every row as an array of values.
    public func query(_ sql: String, _ arguments: [CellValue] = []) throws -> [[CellValue]] {
        let stmt = try prepare(sql)
        try stmt.bind(arguments)
        var rows: [[CellValue]] = []
        while try stmt.step() {
            rows.append((0..<stmt.columnCount).map { stmt.value($0) })
        }
        return rows
    }

    /// The first column of the first row, or `nil`.
    public func scalar(_ sql: String, _ arguments: [CellValue] = []) throws -> CellValue? {
        let stmt = try cached(sql)
        defer { stmt.reset() }  // a statement left on a row would pin its read snapshot
        try stmt.bind(arguments)
        return try stmt.step() ? stmt.value(0) : nil
    }

    /// Runs a statement that returns no rows, with arguments.
    public func run(_ sql: String, _ arguments: [CellValue] = []) throws {
        let stmt = try cached(sql)
        try stmt.bind(arguments)
        try stmt.run()
    }

    public var changes: Int { Int(sqlite3_changes(handle)) }
    public var totalChanges: Int { Int(sqlite3_total_changes(handle)) }
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }
    public var isInTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    func error(_ rc: Int32, sql: String?) -> SQLiteError {
        SQLiteError(code: rc, message: String(cString: sqlite3_errmsg(handle)), sql: sql)
    }
}

/// A compiled statement. Bind with 1-based positions (SQLite's convention) or an array in order.
public final class SQLiteStatement {
    let handle: OpaquePointer
    unowned let connection: SQLiteConnection
    public let sql: String

    init(handle: OpaquePointer, connection: SQLiteConnection, sql: String) {
        self.handle = handle
        self.connection = connection
        self.sql = sql
    }

    deinit { sqlite3_finalize(handle) }

    public func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    public func bind(_ values: [CellValue]) throws {
        for (i, value) in values.enumerated() { try bind(value, at: Int32(i + 1)) }
    }

    public func bind(_ value: CellValue, at index: Int32) throws {
        let rc: Int32
        switch value {
        case .null: rc = sqlite3_bind_null(handle, index)
        case .integer(let v): rc = sqlite3_bind_int64(handle, index, v)
        case .real(let v): rc = sqlite3_bind_double(handle, index, v)
        case .text(let v): rc = bindText(v, at: index)
        }
        if rc != SQLITE_OK { throw connection.error(rc, sql: sql) }
    }

    public func bind(_ value: Int64, at index: Int32) throws {
        let rc = sqlite3_bind_int64(handle, index, value)
        if rc != SQLITE_OK { throw connection.error(rc, sql: sql) }
    }

    /// Binds text with its byte length, so an embedded NUL is kept (and then refused by validation)
    /// instead of silently cutting the text short.
    func bindText(_ value: String, at index: Int32) -> Int32 {
        if value.isEmpty { return sqlite3_bind_text(handle, index, "", 0, kt_sqlite_transient()) }  // a nil pointer would bind NULL
        var value = value
        return value.withUTF8 { bytes in
            bytes.withMemoryRebound(to: CChar.self) { chars in
                sqlite3_bind_text(handle, index, chars.baseAddress, Int32(chars.count), kt_sqlite_transient())
            }
        }
    }

    public func bind(_ value: String, at index: Int32) throws {
        let rc = bindText(value, at: index)
        if rc != SQLITE_OK { throw connection.error(rc, sql: sql) }
    }

    /// Binds bytes as a BLOB (attachment content; cell values are never blobs).
    public func bind(bytes: [UInt8], at index: Int32) throws {
        let rc = bytes.withUnsafeBytes { raw in
            sqlite3_bind_blob64(handle, index, raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1), sqlite3_uint64(raw.count), kt_sqlite_transient())
        }
        if rc != SQLITE_OK { throw connection.error(rc, sql: sql) }
    }

    /// A BLOB (or text) column's bytes; `nil` for NULL.
    public func bytes(_ index: Int32) -> [UInt8]? {
        guard sqlite3_column_type(handle, index) != SQLITE_NULL else { return nil }
        let count = Int(sqlite3_column_bytes(handle, index))
        guard count > 0, let pointer = sqlite3_column_blob(handle, index) else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    /// Calls `body` with a BLOB (or text) column's bytes in place, without a copy; `nil` for NULL.
    /// The bytes are valid only inside `body`.
    public func withBytes<R>(_ index: Int32, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R? {
        guard sqlite3_column_type(handle, index) != SQLITE_NULL else { return nil }
        let pointer = sqlite3_column_blob(handle, index)
        let count = Int(sqlite3_column_bytes(handle, index))
        return try body(UnsafeRawBufferPointer(start: count > 0 ? pointer : nil, count: count))
    }

    /// Advances to the next row: `true` when a row is available.
    @discardableResult
    public func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            let error = connection.error(rc, sql: sql)
            sqlite3_reset(handle)
            throw error
        }
    }

    /// Runs the statement to completion, ignoring rows, and resets it for the next use.
    public func run() throws {
        while try step() {}
        sqlite3_reset(handle)
    }

    public var columnCount: Int32 { sqlite3_column_count(handle) }

    public func columnName(_ index: Int32) -> String { String(cString: sqlite3_column_name(handle, index)) }

    /// The table and column a result column comes from unchanged, or nil for an expression.
    public func columnOrigin(_ index: Int32) -> (table: String, column: String)? {
        guard let table = sqlite3_column_table_name(handle, index), let column = sqlite3_column_origin_name(handle, index) else { return nil }
        return (String(cString: table), String(cString: column))
    }

    public func value(_ index: Int32) -> CellValue {
        switch sqlite3_column_type(handle, index) {
        case SQLITE_NULL: return .null
        case SQLITE_INTEGER: return .integer(sqlite3_column_int64(handle, index))
        case SQLITE_FLOAT: return .real(sqlite3_column_double(handle, index))
        default: return .text(text(index) ?? "")
        }
    }

    public func int64(_ index: Int32) -> Int64 { sqlite3_column_int64(handle, index) }

    public func isNull(_ index: Int32) -> Bool { sqlite3_column_type(handle, index) == SQLITE_NULL }

    public func text(_ index: Int32) -> String? {
        guard let pointer = sqlite3_column_text(handle, index) else { return nil }
        let count = Int(sqlite3_column_bytes(handle, index))
        return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
    }
}

extension SQLiteConnection {
    /// Copies the database to `path` with SQLite's online backup, while other connections (even in
    /// other processes) go on reading and writing. The copy is a consistent snapshot. `progress`
    /// receives (pages done, pages in all) after each step.
    /// `replacing`: remove a file at `path` first; otherwise an existing (empty) file is written into and
    /// keeps its permissions.
    public func backup(to path: String, pagesPerStep: Int32 = 1024, replacing: Bool = true, progress: (Int, Int) -> Void = { _, _ in }) throws {
        if replacing { try? FileManager.default.removeItem(atPath: path) }
        try copyPages(into: try SQLiteConnection(path: path), pagesPerStep: pagesPerStep, what: "backup to \(path)", progress: progress)
    }

    /// Copies this database over `destination`'s (the online backup in the other direction: a restore),
    /// in one step.
    public func copy(into destination: SQLiteConnection) throws {
        try copyPages(into: destination, pagesPerStep: -1, what: "restore") { _, _ in }
    }

    private func copyPages(into destination: SQLiteConnection, pagesPerStep: Int32, what: String, progress: (Int, Int) -> Void) throws {
        guard let backup = sqlite3_backup_init(destination.handle, "main", handle, "main") else {
            throw destination.error(sqlite3_errcode(destination.handle), sql: what)
        }
        while true {
            let rc = sqlite3_backup_step(backup, pagesPerStep)
            let total = Int(sqlite3_backup_pagecount(backup))
            progress(total - Int(sqlite3_backup_remaining(backup)), total)
            if rc == SQLITE_DONE { break }
            if rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED { continue }
            sqlite3_backup_finish(backup)
            throw SQLiteError(code: rc, message: "\(what) failed", sql: nil)
        }
        let rc = sqlite3_backup_finish(backup)
        guard rc == SQLITE_OK else { throw SQLiteError(code: rc, message: "\(what) failed", sql: nil) }
    }
}
