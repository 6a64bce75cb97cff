import Foundation

/// Keeps a replica in sync continuously: pushes local writes within `pollSeconds`, and long-polls the
/// server so a colleague's change arrives as soon as it is committed. Backs off with jitter while the
/// server is unreachable and carries on when it is back. This is what `kt daemon` runs; a field app
/// embeds the same loop:
///
/// ```swift
/// let daemon = SyncDaemon(engine: try SyncEngine(replica: replica))
/// Thread { daemon.run { event in print(event) } }.start()
/// …
/// daemon.stop()   // returns from run() after the current request
/// ```
public final class SyncDaemon: @unchecked Sendable {
    public let engine: SyncEngine
    /// How long one long-poll waits for news; also the longest a local write waits to be pushed.
    public var pollSeconds: Int
    public var maximumBackoffSeconds: Double = 60
    private let lock = NSLock()
    private var stopped = false
    private let wakeUp = DispatchSemaphore(value: 0)

    public enum Event: Sendable, CustomStringConvertible {
        case pushed(PushCounts)
        case pulled(ApplyCounts, cursor: Int64)
        case failed(String, retryInSeconds: Double)
        case stopped

        public var description: String {
            switch self {
            case .pushed(let c): return "pushed \(c.total): \(c.applied) applied, \(c.superseded) superseded, \(c.conflicts) in conflict, \(c.rejected) rejected"
            case .pulled(let c, let cursor):
                var text = "pulled \(c.cellsReceived) cells: \(c.cellsApplied) applied, \(c.rowsDeleted) rows deleted, \(c.conflicts) conflict records"
                if c.rowsEvicted > 0 { text += ", \(c.rowsEvicted) rows left this device's scopes" }
                if c.rowsPurged > 0 { text += ", \(c.rowsPurged) erased rows purged" }
                if c.changesRequeued > 0 { text += ", \(c.changesRequeued) own changes queued again after a server restore" }
                return text + "; cursor \(cursor)"
            case .failed(let why, let seconds): return "sync failed: \(why); retrying in \(String(format: "%.1f", seconds)) s"
            case .stopped: return "stopped"
            }
        }
    }

    public init(engine: SyncEngine, pollSeconds: Int = 1) {
        self.engine = engine
        self.pollSeconds = max(1, pollSeconds)
    }

    public var isStopped: Bool { lock.withLock { stopped } }

    /// Asks the loop to end; `run` returns after the request in flight (at most `pollSeconds`).
    public func stop() {
        lock.withLock { stopped = true }
        wakeUp.signal()
    }

    /// Runs until `stop()`. Blocks the calling thread.
    public func run(_ report: (Event) -> Void) {
        var failures = 0
        while !isStopped {
            do {
                if try engine.replica.outboxCounts().pending > 0 {
                    let pushed = try engine.push()  // also what a recovery after a restore queued again
                    if pushed.pushed.total > 0 { report(.pushed(pushed.pushed)) }
                }
                let pulled = try engine.pull(waitSeconds: pollSeconds)
                let news = pulled.pulled
                if news.cellsReceived > 0 || news.conflicts > 0 || news.rowsEvicted > 0 || news.rowsPurged > 0 || news.changesRequeued > 0 {
                    report(.pulled(pulled.pulled, cursor: pulled.cursor))
                }
                failures = 0
            } catch {
                failures += 1
                // Exponential backoff with full jitter, so a fleet of laptops does not return in step.
                let ceiling = min(maximumBackoffSeconds, pow(2, Double(min(failures, 10))))
                let delay = Double.random(in: 0.5...max(0.5, ceiling))
                report(.failed("\(error)", retryInSeconds: delay))
                _ = wakeUp.wait(timeout: .now() + delay)
            }
        }
        report(.stopped)
    }
}
