import Foundation
import Hummingbird
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
import Logging
import ServiceLifecycle

/// The repository root, found from this file, for the shipped data model.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func shippedDataModel() throws -> DataModel {
    try DataModelFile.load(path: repositoryRoot.appendingPathComponent("Schemas/datamodel.yaml").path)
}

/// A fresh temporary directory, removed when the test process ends (and by the OS on reboot).
func temporaryDirectory(_ label: String = "kt") throws -> String {
    let path = NSTemporaryDirectory() + "\(label)-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func newID() -> String { UUID().uuidString.lowercased() }

/// The pages of the whole feed as a device that sees everything gets them from `store` with this page
/// size: where each page ends, and how many cells it carries (pages end between rows, decision 0020).
func feedPages(_ store: ServerStore, pageSize: Int) throws -> [(cursor: Int64, cells: Int)] {
    var pages: [(cursor: Int64, cells: Int)] = []
    var cursor: Int64 = 0, floor: Int64 = 0
    while true {
        let page = try store.pull(since: cursor, floor: floor, limit: pageSize)
        pages.append((page.cursor, page.rows.reduce(0) { $0 + $1.cells.count }))
        cursor = page.cursor
        floor = page.floor ?? cursor
        if !page.more { return pages }
    }
}

/// A device clock tests can move: real time plus an offset, and strictly increasing between reads so
/// that the order of writes in a test is the order of their versions.
final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var offset: Int64
    private var last: Int64 = 0

    init(offsetMilliseconds: Int64 = 0) { self.offset = offsetMilliseconds }

    /// Sets the clock right (or wrong): like a real correction, this may move it backwards.
    func setOffset(_ milliseconds: Int64) {
        lock.withLock {
            offset = milliseconds
            last = 0
        }
    }

    var now: @Sendable () -> Int64 {
        { [self] in
            lock.withLock {
                last = max(last + 1, Int64(Date().timeIntervalSince1970 * 1000) + offset)
                return last
            }
        }
    }
}

extension Accounts {
    /// Adds a user with scopes unless one of that name exists.
    func ensureUser(_ name: String, role: Role, scopes: [String], profile: String? = nil) throws {
        if (try? user(name)) != nil { return }
        _ = try addUser(name: name, role: role, profile: profile, actor: "test")
        for scope in scopes { _ = try addScope(scope, to: name, actor: "test") }
    }
}

/// A real sync server on a loopback port with a real SQLite store in a temporary directory.
final class TestServer: @unchecked Sendable {
    let directory: String
    let store: ServerStore
    let sync: SyncServer
    let port: Int
    private let task: Task<Void, any Error>
    private let group: ServiceGroup

    let scheme: String
    var url: String { "\(scheme)://127.0.0.1:\(port)" }

    /// Starts a server on a store of `kind` (SQLite by default; `KT_TEST_STORE=postgresql` runs the
    /// default-kind tests on PostgreSQL instead, to try the whole suite there by hand).
    /// `directory`: an SQLite data directory that holds a store already (a fixture).
    static func start(dataModel: DataModel? = nil, maxRequestBytes: Int = 16 * 1024 * 1024,
                      tls: SyncServerConfiguration.TLSFiles? = nil, store kind: StoreDialect? = nil,
                      directory existing: String? = nil) async throws -> TestServer {
        let directory = try existing ?? temporaryDirectory("ktd")
        let model = try dataModel ?? shippedDataModel()
        let store: ServerStore
        switch existing == nil ? kind ?? TestPostgres.defaultDialect : .sqlite {
        case .sqlite:
            store = try ServerStore(directory: directory, dataModel: model)
        case .postgresql:
            store = try await onThread { try ServerStore(postgres: try TestPostgres.freshDatabase(), dataModel: model) }
        }
        var logger = Logger(label: "ktd-test")
        logger.logLevel = .warning
        let server = SyncServer(store: store, configuration: SyncServerConfiguration(host: "127.0.0.1", port: 0, maxRequestBytes: maxRequestBytes, tls: tls),
                                logger: logger)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = try server.makeApplication { port in continuation.yield(port) }
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
        let task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw TestFailure("server did not start") }
        return TestServer(directory: directory, store: store, sync: server, port: port, scheme: tls == nil ? "http" : "https",
                          task: task, group: group)
    }

    private init(directory: String, store: ServerStore, sync: SyncServer, port: Int, scheme: String, task: Task<Void, any Error>,
                 group: ServiceGroup) {
        self.scheme = scheme
        self.directory = directory
        self.store = store
        self.sync = sync
        self.port = port
        self.task = task
        self.group = group
    }

    deinit { task.cancel() }

    /// Shuts the server down gracefully: in-flight requests finish first.
    func stop() async {
        await group.triggerGracefulShutdown()
        _ = await task.result
    }

    /// Registers a device of `user` and returns its token. The user is created on first use with
    /// the given role and scopes (by default the office: back office, every scope).
    func token(_ name: String, user: String = "office", role: Role = .backOffice, scopes: [String] = ["*"],
               profile: String? = nil) throws -> String {
        try store.accounts.ensureUser(user, role: role, scopes: scopes, profile: profile)
        return try store.accounts.addDevice(name: name, user: user).token
    }

    /// A new replica connected to this server, as `kt init` would make it, for a device of `user`.
    func replica(_ name: String, clock: TestClock = TestClock(), user: String = "office", role: Role = .backOffice,
                 scopes: [String] = ["*"], profile: String? = nil) throws -> Replica {
        let path = try temporaryDirectory("replica") + "/\(name).sqlite"
        return try Replica.create(path: path, dataModel: store.dataModel, serverURL: url,
                                  token: try token(name, user: user, role: role, scopes: scopes, profile: profile), clock: clock.now)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension Replica {
    /// Pushes and pulls on a thread of its own (the client blocks in libcurl; the server needs the
    /// cooperative pool to answer).
    @discardableResult
    func sync(transport: (any SyncTransport)? = nil, pageSize: Int? = nil) async throws -> SyncReport {
        let engine = try transport.map { SyncEngine(replica: self, transport: $0) } ?? SyncEngine(replica: self)
        if let pageSize { engine.pageSize = pageSize }
        return try await engine.sync()
    }

    func value(_ table: String, _ id: String, _ column: String) throws -> CellValue? {
        try query("SELECT \"\(column)\" FROM \"\(table)\" WHERE id = ?", [.text(id)]).rows.first?.first
    }

    func rowCount(_ table: String) throws -> Int {
        guard case .integer(let n)? = try query("SELECT count(*) FROM \"\(table)\"").rows.first?.first else { return -1 }
        return Int(n)
    }

    /// Every synced table's rows, sorted, for comparing replicas.
    func snapshot() throws -> [String: [[CellValue]]] {
        var result: [String: [[CellValue]]] = [:]
        for table in dataModel.tables {
            result[table.name] = try query("SELECT * FROM \"\(table.name)\" ORDER BY id").rows
        }
        return result
    }
}

/// Inserts a resident and a case on a replica and returns their ids.
func seedCase(on replica: Replica, name: String = "Mevrouw De Vries", team: String = "castricum-noord") throws -> (resident: String, case: String) {
    let resident = newID(), caseID = newID()
    try replica.transaction {
        try replica.execute("INSERT INTO residents (id, last_name, municipality) VALUES (?, ?, 'castricum')", [.text(resident), .text(name)])
        try replica.execute("INSERT INTO cases (id, resident_id, team, status, question) VALUES (?, ?, ?, 'melding', 'Trap op komen')",
                            [.text(caseID), .text(resident), .text(team)])
    }
    return (resident, caseID)
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func increment() -> Int { lock.withLock { value += 1; return value } }
    var current: Int { lock.withLock { value } }
}

extension Replica {
    /// How many cell versions the replica knows.
    func knownCellCount() throws -> Int {
        guard case .integer(let n)? = try query("SELECT coalesce(sum(kt_versions_count(versions)), 0) FROM _kt_versions").rows.first?.first
        else { return -1 }
        return Int(n)
    }
}
