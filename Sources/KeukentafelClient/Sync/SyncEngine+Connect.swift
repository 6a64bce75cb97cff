import Foundation

/// Continuous sync for an app: `connect()` starts it, `disconnect()` ends it. Follow it through
/// `statusUpdates()`.
extension SyncEngine {
    /// Starts syncing continuously on a thread of its own and returns at once: local writes are pushed
    /// as soon as they are committed, and changes on the server arrive within a moment through a
    /// long-poll of `pollSeconds`. While the server cannot be reached it retries with backoff; the
    /// status says `offline` and why. Calling it while connected does nothing.
    public func connect(pollSeconds: Int = 25) {
        let started = connectionLock.withLock { () -> ConnectedSync? in
            guard connection == nil else { return nil }
            let sync = ConnectedSync(daemon: SyncDaemon(engine: self, pollSeconds: pollSeconds))
            connection = sync
            return sync
        }
        started?.start()
    }

    /// Ends the continuous sync: the request in flight is stopped at once (a push whose answer is lost
    /// this way is sent again, with the same change ids, by the next sync). Returns when the loop has
    /// ended; the status is then `offline`.
    public func disconnect() async {
        guard let sync = connectionLock.withLock({ () -> ConnectedSync? in
            defer { connection = nil }
            return connection
        }) else { return }
        await sync.stop()
    }

    /// Whether `connect()` is in effect.
    public var isConnected: Bool { connectionLock.withLock { connection != nil } }
}

/// The loop of a connected engine and the thread it runs on.
final class ConnectedSync: @unchecked Sendable {
    let daemon: SyncDaemon
    private let ended = NSCondition()
    private var running = true

    init(daemon: SyncDaemon) { self.daemon = daemon }

    func start() {
        let thread = Thread { [self] in
            daemon.run { _ in }
            ended.withLock {
                running = false
                ended.broadcast()
            }
        }
        thread.name = "keukentafel.connected-sync"
        thread.start()
    }

    func stop() async {
        daemon.stop()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async { [self] in
                ended.withLock { while running { ended.wait() } }
                continuation.resume()
            }
        }
    }
}
