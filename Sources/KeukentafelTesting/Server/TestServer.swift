import Foundation
import Hummingbird
import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
import Logging
import ServiceLifecycle

/// A real sync server for tests, in this process, on a loopback port, with a real store in a
/// temporary directory (or an empty PostgreSQL database). Replicas talk to it over HTTP through
/// libcurl, exactly as in the field.
///
/// ```swift
/// let server = try await TestServer.start(modelFile: "Schemas/datamodel.yaml")
/// let laptop = try server.replica("laptop fatima", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
/// try await laptop.sync()
/// await server.stop()
/// ```
public final class TestServer: @unchecked Sendable {
    /// Where the server keeps its store.
    public enum Store: Sendable {
        /// SQLite in a temporary directory (the default).
        case sqlite
        /// An empty PostgreSQL database the test made for this server.
        case postgres(PostgresLocation)
    }

    /// The SQLite data directory (also made, and unused, for PostgreSQL).
    public let directory: String
    /// The store, for arranging accounts and checking what arrived.
    public let store: ServerStore
    /// The HTTP server (its `notifier` tells how many long-polls are parked).
    public let sync: SyncServer
    public let port: Int
    public let scheme: String
    public var url: String { "\(scheme)://127.0.0.1:\(port)" }
    /// The monitoring listener: `GET \(metricsURL)/metrics`.
    public let metricsURL: String
    private let task: Task<Void, any Error>
    private let group: ServiceGroup

    /// Starts a server for `model`. `directory`: an SQLite data directory that holds a store already
    /// (e.g. a fixture of an older layout); otherwise a new temporary one.
    public static func start(model: DataModel, store kind: Store = .sqlite, maxRequestBytes: Int = 16 * 1024 * 1024,
                             tls: SyncServerConfiguration.TLSFiles? = nil, directory existing: String? = nil) async throws -> TestServer {
        let directory = try existing ?? TestDirectory.make("ktd")
        let store: ServerStore
        switch kind {
        case .sqlite: store = try ServerStore(directory: directory, dataModel: model)
        case .postgres(let location): store = try await TestThread.run { try ServerStore(postgres: location, dataModel: model) }
        }
        var logger = Logger(label: "ktd-test")
        logger.logLevel = .warning
        let server = SyncServer(store: store, configuration: SyncServerConfiguration(host: "127.0.0.1", port: 0, maxRequestBytes: maxRequestBytes, tls: tls),
                                logger: logger)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let (metricsPorts, metricsContinuation) = AsyncStream<Int>.makeStream()
        let app = try server.makeApplication { port in continuation.yield(port) }
        let metrics = server.makeMetricsApplication(host: "127.0.0.1", port: 0) { port in metricsContinuation.yield(port) }
        let group = ServiceGroup(configuration: .init(services: [app, metrics], gracefulShutdownSignals: [], logger: logger))
        let task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator(), metricsIterator = metricsPorts.makeAsyncIterator()
        guard let port = await iterator.next(), let metricsPort = await metricsIterator.next() else {
            throw TestingError("the test server did not start")
        }
        return TestServer(directory: directory, store: store, sync: server, port: port, scheme: tls == nil ? "http" : "https",
                          metricsURL: "http://127.0.0.1:\(metricsPort)", task: task, group: group)
    }

    /// Starts a server for the data model in a YAML file (as `ktd serve --schema` reads it).
    public static func start(modelFile: String, store: Store = .sqlite) async throws -> TestServer {
        try await start(model: try DataModelFile.load(path: modelFile), store: store)
    }

    private init(directory: String, store: ServerStore, sync: SyncServer, port: Int, scheme: String, metricsURL: String,
                 task: Task<Void, any Error>, group: ServiceGroup) {
        self.scheme = scheme
        self.metricsURL = metricsURL
        self.directory = directory
        self.store = store
        self.sync = sync
        self.port = port
        self.task = task
        self.group = group
    }

    deinit { task.cancel() }

    /// Shuts the server down gracefully: requests in flight finish first, parked long-polls answer.
    public func stop() async {
        await group.triggerGracefulShutdown()
        _ = await task.result
    }

    /// Registers a device of `user` and returns its token. The user is created on first use with the
    /// given role and scopes (by default the office: back office, every scope).
    public func token(_ device: String, user: String = "office", role: Role = .backOffice, scopes: [String] = ["*"],
                      profile: String? = nil) throws -> String {
        if (try? store.accounts.user(user)) == nil {
            _ = try store.accounts.addUser(name: user, role: role, profile: profile, actor: "test")
            for scope in scopes { _ = try store.accounts.addScope(scope, to: user, actor: "test") }
        }
        return try store.accounts.addDevice(name: device, user: user).token
    }

    /// A new replica connected to this server, as `kt init` makes it, for a new device of `user`, in a
    /// temporary directory. `clock` sets the device's clock (move it with `TestClock.setOffset`);
    /// `encryption` encrypts its file as `kt init` does by default (plain unless asked, for speed).
    public func replica(_ device: String, clock: TestClock = TestClock(), user: String = "office", role: Role = .backOffice,
                        scopes: [String] = ["*"], profile: String? = nil, encryption: ReplicaEncryption = .none) throws -> Replica {
        let path = try TestDirectory.make("replica") + "/\(device.replacingOccurrences(of: "/", with: "-")).sqlite"
        return try Replica.create(path: path, dataModel: store.dataModel, serverURL: url,
                                  token: try token(device, user: user, role: role, scopes: scopes, profile: profile),
                                  encryption: encryption, clock: clock.now)
    }
}

/// A failure of the testing kit itself (a server that did not start, a wait that ran out).
public struct TestingError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Temporary directories for stores and replicas.
public enum TestDirectory {
    /// A new, empty directory under the system's temporary directory.
    public static func make(_ label: String = "kt") throws -> String {
        let path = NSTemporaryDirectory() + "\(label)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

/// Blocking work from an async test, on a thread of its own: SQLite and libcurl calls must not block
/// the cooperative pool the in-process server needs to answer them.
public enum TestThread {
    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }
}
