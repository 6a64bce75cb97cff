import ArgumentParser
import Hummingbird
import KeukentafelServer
import Logging
import ServiceLifecycle

/// The sync server in this process, on a free loopback port, for both benchmarks.
struct LoopbackServer {
    let url: String
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    static func start(_ store: ServerStore) async throws -> LoopbackServer {
        var logger = Logger(label: "kt-bench")
        logger.logLevel = .error
        let server = SyncServer(store: store, configuration: SyncServerConfiguration(host: "127.0.0.1", port: 0), logger: logger)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = try server.makeApplication { continuation.yield($0) }
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
        let task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            task.cancel()
            throw ValidationError("the server did not start")
        }
        return LoopbackServer(url: "http://127.0.0.1:\(port)", group: group, task: task)
    }

    /// Shuts the server down and waits until it has.
    func stop() async {
        await group.triggerGracefulShutdown()
        _ = await task.result
    }
}
