import Foundation
import KeukentafelProtocol
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO

/// A `StoreConnection` over one PostgreSQL connection (postgres-nio), used synchronously from the
/// store's blocking methods, which run on NIO's thread pool, never on an event loop.
///
/// What it does so the store's SQL runs unchanged on both databases (decision 0013):
/// - `?` placeholders become `$1…$n`;
/// - SQLite types cell values per value; PostgreSQL per column. Columns that hold cell values are
///   `bytea` here, holding a tagged encoding (`PostgresCellEncoding`), so equality, indexes and
///   `NULL` behave as in SQLite. Which parameter needs which encoding PostgreSQL says itself: the
///   first time a statement is seen it is prepared once and its inferred parameter types are read
///   from `pg_prepared_statements`;
/// - an `immediate` transaction takes the store's write lock (`pg_advisory_xact_lock`), so writers
///   run one at a time across every `ktd` process, as on SQLite: sequence numbers are handed out in
///   commit order and a pull never passes a change that commits later (`ConcurrencyTests`). A read
///   transaction is a `REPEATABLE READ READ ONLY` snapshot.
final class PostgresStoreConnection: StoreConnection {
    let location: PostgresLocation
    private var connection: PostgresConnection
    private var parameterTypes: [String: [PostgresDataType]] = [:]
    private var statements: [String: PostgresStatement] = [:]
    /// Kept statements prepared under a name on this connection (decision 0037): parsed and analysed
    /// once, not for every execution. Gone with the connection, so cleared when it is made again.
    private var prepared: [String: PreparedQuery] = [:]
    private var transactionDepth = 0
    /// Rows changed by the last statement run through `run`, `query`, `scalar` or `bytes`; nil after a
    /// kept statement, whose execution as a prepared statement does not report it.
    private var lastChanges: Int? = 0
    var changes: Int {
        guard let lastChanges else {
            preconditionFailure("row counts are known after run, query, scalar or bytes, not after a kept statement (prepared on PostgreSQL)")
        }
        return lastChanges
    }
    var dialect: StoreDialect { .postgresql }

    /// The advisory lock every writing transaction of every process takes: "kt" in ASCII.
    static let writeLockKey: Int64 = 0x6B74

    init(_ location: PostgresLocation) throws {
        self.location = location
        self.connection = try Self.connect(location)
    }

    deinit {
        // Never block here (the last release may happen on any thread, even the cooperative pool);
        // the closure keeps the connection alive until it is closed, as postgres-nio requires.
        let connection = self.connection
        connection.close().whenComplete { _ in withExtendedLifetime(connection) {} }
    }

    static func connect(_ location: PostgresLocation) throws -> PostgresConnection {
        var logger = Logger(label: "keukentafel.postgres")
        logger.logLevel = .critical
        let tls: PostgresConnection.Configuration.TLS
        if location.requireTLS {
            tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
        } else {
            tls = .disable
        }
        let configuration = PostgresConnection.Configuration(
            host: location.host, port: location.port, username: location.user, password: location.password,
            database: location.database, tls: tls)
        do {
            return try PostgresConnection.connect(on: MultiThreadedEventLoopGroup.singleton.any(), configuration: configuration,
                                                  id: 1, logger: logger).wait()
        } catch {
            throw PostgresStoreError(error, doing: "cannot connect to \(location)")
        }
    }

    /// The channel every push is announced on (`NOTIFY`), so long-polls in every process wake.
    static let pushChannel = "keukentafel_push"

    /// Announces a push to every `ktd` on the database; PostgreSQL delivers it when the transaction commits.
    /// The payload says what the push touched, so each process wakes only the long-polls it concerns.
    func announcePush(_ footprint: ChangeFootprint) throws {
        try run("SELECT pg_notify(?, ?)", [.text(Self.pushChannel), .text(footprint.notificationPayload)])
    }

    /// Listens for pushes announced by any process and calls `onChange` for each, until cancelled. A
    /// lost connection is opened again; `onChange` is called then too, in case a push was missed.
    static func watchPushes(_ location: PostgresLocation, _ onChange: @escaping @Sendable (ChangeFootprint) -> Void) async throws {
        var logger = Logger(label: "keukentafel.postgres.listen")
        logger.logLevel = .critical
        while !Task.isCancelled {
            do {
                let connection = try await PostgresConnection.connect(
                    on: MultiThreadedEventLoopGroup.singleton.any(),
                    configuration: PostgresConnection.Configuration(
                        host: location.host, port: location.port, username: location.user, password: location.password,
                        database: location.database,
                        tls: location.requireTLS ? .require(try NIOSSLContext(configuration: .makeClientConfiguration())) : .disable),
                    id: 2, logger: logger)
                onChange(.everyone)
                do {
                    try await withTaskCancellationHandler {
                        try await connection.listen(on: pushChannel) { notifications in
                            for try await notification in notifications { onChange(ChangeFootprint(notificationPayload: notification.payload)) }
                        }
                    } onCancel: {
                        connection.close().whenComplete { _ in }
                    }
                } catch {}
                try? await connection.close()  // closed before it is released, on every path
                if Task.isCancelled { return }
                try await Task.sleep(for: .seconds(1))
            } catch {
                if Task.isCancelled { return }
                try await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// A connection lost between transactions (PostgreSQL restarted) is opened again; inside one,
    /// the transaction fails and the caller's request with it.
    private func reconnectIfNeeded() throws {
        guard transactionDepth == 0, connection.isClosed else { return }
        connection = try Self.connect(location)
        parameterTypes.removeAll()
        prepared.removeAll()
    }

    // MARK: StoreConnection

    func execute(_ sql: String) throws {
        for statement in Self.splitStatements(sql) { _ = try send(statement, []) }
    }

    func literalStatement(_ sql: StaticString) throws -> any StoreStatement { try cachedStatement(sql.description) }

    func cachedStatement(_ sql: String) throws -> any StoreStatement {
        if let statement = statements[sql] {
            statement.reset()
            return statement
        }
        let statement = PostgresStatement(connection: self, sql: sql)
        statements[sql] = statement
        return statement
    }

    func transaction<T>(immediate: Bool, _ body: () throws -> T) throws -> T {
        if transactionDepth > 0 {
            transactionDepth += 1
            let name = "kt_savepoint_\(transactionDepth)"
            defer { transactionDepth -= 1 }
            try execute("SAVEPOINT \(name)")
            do {
                let result = try body()
                try execute("RELEASE SAVEPOINT \(name)")
                return result
            } catch {
                try? execute("ROLLBACK TO SAVEPOINT \(name); RELEASE SAVEPOINT \(name)")
                throw error
            }
        }
        try reconnectIfNeeded()
        if immediate {
            try execute("BEGIN")
            try execute("SELECT pg_advisory_xact_lock(\(Self.writeLockKey))")
        } else {
            try execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        }
        transactionDepth = 1
        defer { transactionDepth = 0 }
        do {
            let result = try body()
            // COMMIT of a transaction that failed answers ROLLBACK, without an error: never take that as done.
            let outcome = try send("COMMIT", [])
            guard outcome.metadata.command == "COMMIT" else {
                throw PostgresStoreError(message: "the transaction was rolled back by PostgreSQL (\(outcome.metadata.command))", sqlState: nil, sql: "COMMIT")
            }
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    func query(_ sql: String, _ arguments: [CellValue]) throws -> [[CellValue]] {
        let result = try send(Self.numberPlaceholders(sql).sql, arguments)
        return result.rows.map { row in row.map(PostgresCellEncoding.decode) }
    }

    func scalar(_ sql: String, _ arguments: [CellValue]) throws -> CellValue? {
        let result = try send(Self.numberPlaceholders(sql).sql, arguments)
        return result.rows.first.flatMap { row in row.first.map(PostgresCellEncoding.decode) }
    }

    func run(_ sql: String, _ arguments: [CellValue]) throws {
        _ = try send(Self.numberPlaceholders(sql).sql, arguments)
    }

    func run(_ sql: String, _ arguments: [CellValue], bytes: [UInt8]) throws {
        _ = try send(Self.numberPlaceholders(sql).sql, arguments, bytes: bytes)
    }

    func bytes(_ sql: String, _ arguments: [CellValue]) throws -> [UInt8]? {
        let result = try send(Self.numberPlaceholders(sql).sql, arguments)
        guard let row = result.rows.first, let cell = row.first else { return nil }
        return cell.bytes.map { Array($0.readableBytesView) }
    }

    // MARK: Sending

    /// Runs one statement (with `$n` placeholders) and collects its rows.
    /// `bytes`: a last parameter bound as raw `bytea` (attachment content). `raw`: parameters (by
    /// 0-based position) bound as raw `bytea` instead of their tagged cell value (rows' records).
    func send(_ sql: String, _ arguments: [CellValue], bytes: [UInt8]? = nil, raw: [Int: [UInt8]] = [:]) throws -> PostgresQueryResult {
        try reconnectIfNeeded()
        do {
            let binds = try self.binds(sql, arguments, bytes: bytes, raw: raw)
            let result = try connection.query(sql, binds).wait()
            lastChanges = result.metadata.rows ?? 0
            return result
        } catch let error as PostgresStoreError {
            throw error
        } catch {
            throw PostgresStoreError(error, doing: sql)
        }
    }

    /// Runs a kept statement (with `$n` placeholders) whose rows are not wanted as a statement prepared
    /// under a name on this connection, preparing it the first time. PostgreSQL then neither parses
    /// nor analyses it again (a push's multi-row inserts take thousands of parameters), and postgres-nio
    /// sends only its parameters: about a third of PostgreSQL's CPU during an ingest was parsing and
    /// planning the same few statements (decision 0037). Such an execution does not report the rows it
    /// changed (`changes`), and would return rows as text, so statements whose rows are read stay unnamed.
    func sendPrepared(_ sql: String, _ arguments: [CellValue], raw: [Int: [UInt8]]) throws {
        try reconnectIfNeeded()
        do {
            let binds = try self.binds(sql, arguments, bytes: nil, raw: raw)
            let statement: PreparedQuery
            if let known = prepared[sql] {
                statement = known
            } else {
                statement = try connection.prepare(query: sql).wait()
                prepared[sql] = statement
            }
            lastChanges = nil
            _ = try statement.execute(binds).wait()
        } catch let error as PostgresStoreError {
            throw error
        } catch {
            throw PostgresStoreError(error, doing: sql)
        }
    }

    /// The parameters as PostgreSQL takes them, each in the type it inferred for its place.
    /// `bytes`: a last parameter bound as raw `bytea`; `raw`: parameters (by 0-based position) bound
    /// as raw `bytea` instead of their tagged cell value.
    private func binds(_ sql: String, _ arguments: [CellValue], bytes: [UInt8]?, raw: [Int: [UInt8]]) throws -> [PostgresData] {
        let types = try types(of: sql, count: arguments.count + (bytes == nil ? 0 : 1))
        var binds: [PostgresData]
        if raw.isEmpty {
            binds = try zip(arguments, types).map { try PostgresCellEncoding.encode($0, as: $1) }
        } else {
            binds = try zip(arguments, types).enumerated().map { position, pair in
                if let data = raw[position] { return PostgresData(type: .bytea, formatCode: .binary, value: ByteBuffer(bytes: data)) }
                return try PostgresCellEncoding.encode(pair.0, as: pair.1)
            }
        }
        if let bytes { binds.append(PostgresData(type: .bytea, formatCode: .binary, value: ByteBuffer(bytes: bytes))) }
        return binds
    }

    /// The parameter types PostgreSQL infers for a statement, asked once per statement.
    private func types(of sql: String, count: Int) throws -> [PostgresDataType] {
        if count == 0 { return [] }
        if let known = parameterTypes[sql] { return known }
        _ = try connection.query("PREPARE kt_probe AS " + sql).wait()
        let rows = try connection.query(
            "SELECT array_to_string(parameter_types::oid[], ',') FROM pg_prepared_statements WHERE name = 'kt_probe'").wait()
        _ = try connection.query("DEALLOCATE kt_probe").wait()
        guard case .text(let list)? = rows.rows.first?.first.map(PostgresCellEncoding.decode) else {
            throw PostgresStoreError(message: "PostgreSQL did not describe the statement's parameters", sqlState: nil, sql: sql)
        }
        let types = list.split(separator: ",").compactMap { UInt32($0) }.map { PostgresDataType($0) }
        guard types.count == count else {
            throw PostgresStoreError(message: "the statement takes \(types.count) parameters, \(count) were given", sqlState: nil, sql: sql)
        }
        parameterTypes[sql] = types
        return types
    }

    /// Splits a script into statements at top-level semicolons (not inside quotes or `$$` bodies):
    /// the extended protocol takes one statement at a time.
    static func splitStatements(_ sql: String) -> [String] {
        var statements: [String] = []
        var current = ""
        var quote: Character?
        var inDollarBody = false
        var previous: Character = " "
        var inComment = false
        for character in sql {
            if inComment {
                if character == "\n" { inComment = false; current.append(character) }
                previous = character
                continue
            }
            if inDollarBody {
                current.append(character)
                if character == "$", previous == "$" { inDollarBody = false; previous = " "; continue }
            } else if let open = quote {
                current.append(character)
                if character == open { quote = nil }
            } else if character == "-", previous == "-" {
                current.removeLast()
                inComment = true
            } else if character == "'" || character == "\"" {
                quote = character
                current.append(character)
            } else if character == "$", previous == "$" {
                current.append(character)
                inDollarBody = true
                previous = " "
                continue
            } else if character == ";" {
                let trimmed = current.trimmingCharacters(in: .whitespacesAndNewlines)
                if !trimmed.isEmpty { statements.append(trimmed) }
                current = ""
            } else {
                current.append(character)
            }
            previous = character
        }
        let trimmed = current.trimmingCharacters(in: .whitespacesAndNewlines)
        if !trimmed.isEmpty { statements.append(trimmed) }
        return statements
    }

    /// Rewrites `?` placeholders as `$1…$n` (and SQLite's numbered `?NNN` as `$NNN`), leaving quoted
    /// text and identifiers alone. `count` is the number of distinct parameters.
    static func numberPlaceholders(_ sql: String) -> (sql: String, count: Int) {
        var output = ""
        output.reserveCapacity(sql.utf8.count + 16)
        var next = 0, highest = 0
        var quote: Character?
        var characters = sql[...]
        while let character = characters.popFirst() {
            if let open = quote {
                if character == open { quote = nil }
                output.append(character)
            } else if character == "'" || character == "\"" {
                quote = character
                output.append(character)
            } else if character == "?" {
                // One predicate: `prefix(while: \.isASCII)` first scanned the whole rest of the text for
                // every placeholder, quadratic in a multi-row insert's thousands of them.
                let digits = characters.prefix { $0.isASCII && $0.isNumber }
                if let number = Int(digits) {
                    characters = characters.dropFirst(digits.count)
                    highest = max(highest, number)
                    output += "$\(number)"
                } else {
                    next += 1
                    highest = max(highest, next)
                    output += "$\(next)"
                }
            } else {
                output.append(character)
            }
        }
        return (output, highest)
    }
}

/// A statement on PostgreSQL: binds collected, run on the first `step()`, rows kept until `reset()`.
final class PostgresStatement: StoreStatement {
    unowned let connection: PostgresStoreConnection
    let sql: String
    private var arguments: [CellValue]
    /// Parameters bound as raw bytes, by 0-based position.
    private var raw: [Int: [UInt8]] = [:]
    private var rows: [PostgresRandomAccessRow]?
    private var index = -1

    init(connection: PostgresStoreConnection, sql: String) {
        let numbered = PostgresStoreConnection.numberPlaceholders(sql)
        self.connection = connection
        self.sql = numbered.sql
        self.arguments = Array(repeating: .null, count: numbered.count)
    }

    func reset() {
        rows = nil
        index = -1
        for i in arguments.indices { arguments[i] = .null }
        raw.removeAll(keepingCapacity: true)
    }

    func bind(_ values: [CellValue]) throws {
        for (i, value) in values.enumerated() { try bind(value, at: Int32(i + 1)) }
    }

    func bind(_ value: CellValue, at index: Int32) throws {
        guard index >= 1, Int(index) <= arguments.count else {
            throw PostgresStoreError(message: "no parameter \(index) in the statement", sqlState: nil, sql: sql)
        }
        rows = nil
        arguments[Int(index) - 1] = value
        if !raw.isEmpty { raw[Int(index) - 1] = nil }
    }

    func bind(bytes: [UInt8], at index: Int32) throws {
        try bind(.null, at: index)
        raw[Int(index) - 1] = bytes
    }

    func bind(_ value: Int64, at index: Int32) throws { try bind(.integer(value), at: index) }
    func bind(_ value: String, at index: Int32) throws { try bind(.text(value), at: index) }

    @discardableResult
    func step() throws -> Bool {
        if rows == nil {
            // Unnamed: postgres-nio asks for a prepared statement's rows as text (bytea in hex), the
            // unnamed statement's as binary, and the records a page reads are bytea.
            rows = try connection.send(sql, arguments, raw: raw).rows.map { $0.makeRandomAccess() }
            index = -1
        }
        index += 1
        return index < rows!.count
    }

    func run() throws {
        _ = try connection.sendPrepared(sql, arguments, raw: raw)
        rows = nil
        index = -1
    }

    private func cell(_ column: Int32) -> PostgresCell? {
        guard let rows, index >= 0, index < rows.count, Int(column) < rows[index].count else { return nil }
        return rows[index][Int(column)]
    }

    func value(_ index: Int32) -> CellValue { cell(index).map(PostgresCellEncoding.decode) ?? .null }

    func int64(_ index: Int32) -> Int64 {
        switch value(index) {
        case .integer(let v): return v
        case .real(let v): return Int64(v)
        case .text(let v): return Int64(v) ?? 0
        case .null: return 0
        }
    }

    func isNull(_ index: Int32) -> Bool { cell(index)?.bytes == nil }

    func withBytes<R>(_ index: Int32, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R? {
        guard let cell = cell(index), let buffer = cell.bytes else { return nil }
        if cell.format == .text {
            // `bytea` in PostgreSQL's text form: `\x` and two hex digits per byte.
            let text = Array(buffer.readableBytesView.dropFirst(2))
            var bytes: [UInt8] = []
            bytes.reserveCapacity(text.count / 2)
            var index = 0
            while index + 1 < text.count, let high = Self.hexDigit(text[index]), let low = Self.hexDigit(text[index + 1]) {
                bytes.append(high << 4 | low)
                index += 2
            }
            return try bytes.withUnsafeBytes(body)
        }
        return try buffer.withUnsafeReadableBytes(body)
    }

    private static func hexDigit(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    func text(_ index: Int32) -> String? {
        switch value(index) {
        case .text(let v): return v
        case .integer(let v): return String(v)
        case .real(let v): return String(v)
        case .null: return nil
        }
    }
}

/// A PostgreSQL error with the server's own message and SQLSTATE (postgres-nio hides them from
/// `description`, so that logs do not leak data by accident; these messages name no cell values).
public struct PostgresStoreError: Error, CustomStringConvertible {
    /// PostgreSQL's message.
    public var message: String
    /// The SQLSTATE code, when the server sent one.
    public var sqlState: String?
    /// The statement that failed, shortened.
    public var sql: String?

    init(message: String, sqlState: String?, sql: String?) {
        self.message = message
        self.sqlState = sqlState
        self.sql = sql
    }

    init(_ error: any Error, doing what: String) {
        if let error = error as? PSQLError {
            let server = error.serverInfo
            self.init(message: server?[.message] ?? "\(error.code)" + (error.underlying.map { ": \($0)" } ?? ""),
                      sqlState: server?[.sqlState], sql: what)
        } else {
            self.init(message: "\(error)", sqlState: nil, sql: what)
        }
    }

    /// The message, the SQLSTATE and the statement.
    public var description: String {
        "PostgreSQL: \(message)" + (sqlState.map { " (SQLSTATE \($0))" } ?? "") + (sql.map { " — in: \($0.prefix(200))" } ?? "")
    }
}
