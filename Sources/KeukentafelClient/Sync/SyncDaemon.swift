import Foundation

/// Keeps a replica in sync continuously: long-polls the server, so a colleague's change arrives as
/// soon as it is committed, and pushes a local write as soon as it is made (the write ends the
/// long-poll early, also when another process such as `kt sql` made it). Backs off with jitter while
/// the server is unreachable and carries on when it is back. This is what `kt daemon` runs;
/// `SyncEngine.connect()` runs the same loop for an app:
///
/// ```swift
/// let daemon = SyncDaemon(engine: try SyncEngine(replica: replica))
/// Thread { daemon.run { event in print(event) } }.start()
/// …
/// daemon.stop()   // the request in flight ends at once; run() returns
/// ```
public final class SyncDaemon: @unchecked Sendable {
    public let engine: SyncEngine
    /// How long one long-poll waits for news. Local writes do not wait for it to end.
    public var pollSeconds: Int
    public var maximumBackoffSeconds: Double = 60
    private let lock = NSLock()
    private var stopped = false
    /// Ends the step in flight when `stop()` is called.
    private let stopping = RequestCancellation()
    /// Ends the current long-poll when a local write wants to go out.
    private var wake: RequestCancellation?
    private let wakeUp = DispatchSemaphore(value: 0)

    public enum Event: Sendable, CustomStringConvertible {
        case pushed(PushCounts)
        case pulled(ApplyCounts, cursor: Int64)
        case failed(String, retryInSeconds: Double)
        /// The server answered again after `afterFailures` failed attempts in a row.
        case recovered(afterFailures: Int)
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
            case .recovered(let failures):
                return "the server answers again, after \(failures) failed attempt\(failures == 1 ? "" : "s")"
            case .stopped: return "stopped"
            }
        }
    }

    /// `pollSeconds`: how long each long-poll waits for news (the server allows up to 60).
    public init(engine: SyncEngine, pollSeconds: Int = 25) {
        self.engine = engine
        self.pollSeconds = max(1, pollSeconds)
    }

    public var isStopped: Bool { lock.withLock { stopped } }

    /// Ends the loop: the request in flight is stopped at once, and `run` returns.
    public func stop() {
        lock.withLock { stopped = true }
        stopping.cancel()
        wakeUp.signal()
    }

    /// Runs until `stop()`. Blocks the calling thread.
    public func run(_ report: (Event) -> Void) {
        let replica = engine.replica
        // A commit that adds to the outbox, here or in another process, ends the long-poll early.
        let watcher = replica.observers.addChangeWatcher { [weak self] tables in
            guard tables?.contains("_kt_outbox") ?? true else { return }
            self?.lock.withLock { self?.wake }?.cancel()
        }
        replica.startWatchingOtherProcesses()
        defer { replica.observers.remove(watcher) }
        var failures = 0
        // The first pull, and the first after a failure, catches up without waiting: it says at once
        // whether the server answers and brings what is new, so the status is right from the start.
        var caughtUp = false
        while !isStopped {
            do {
                if try replica.outboxCounts().pending > 0 {
                    let pushed = try step { try engine.pushAll(into: &$0) }  // also what a restore queued again
                    answered(&failures, report)
                    if pushed.pushed.total > 0 { report(.pushed(pushed.pushed)) }
                }
                let wake = RequestCancellation()
                lock.withLock { self.wake = wake }
                // Written after the push and before the wake-up was armed: push it first.
                if try replica.outboxCounts().pending > 0 { continue }
                let pulled: SyncReport
                do {
                    let wait = caughtUp ? pollSeconds : 0
                    pulled = try step(longPollWake: wake) { try engine.pullAll(into: &$0, waitSeconds: wait) }
                } catch is CancellationError where !isStopped {
                    continue  // a local write ended the long-poll: push it
                }
                answered(&failures, report)
                let news = pulled.pulled
                if news.cellsReceived > 0 || news.conflicts > 0 || news.rowsEvicted > 0 || news.rowsPurged > 0 || news.changesRequeued > 0 {
                    report(.pulled(pulled.pulled, cursor: pulled.cursor))
                }
                caughtUp = true
            } catch is CancellationError where isStopped {
                break
            } catch is CancellationError {
                continue  // `engine.cancel()` ended this step, not the loop
            } catch {
                failures += 1
                caughtUp = false
                // Exponential backoff with full jitter, so a fleet of laptops does not return in step.
                let ceiling = min(maximumBackoffSeconds, pow(2, Double(min(failures, 10))))
                let delay = Double.random(in: 0.5...max(0.5, ceiling))
                report(.failed("\(error)", retryInSeconds: delay))
                _ = wakeUp.wait(timeout: .now() + delay)
            }
        }
        engine.status.update { $0.connection = .offline }
        report(.stopped)
    }

    /// One engine step under a cancellation of its own that `stop()` also ends: `engine.cancel()`
    /// cancels only that step, so the loop carries on.
    private func step(longPollWake wake: RequestCancellation? = nil, _ body: (inout SyncReport) throws -> Void) throws -> SyncReport {
        let (cancellation, release) = RequestCancellation.any([stopping])
        defer { release() }
        return try engine.step(cancellation, longPollWake: wake, body)
    }

    /// The server answered: after an outage, say that it is over.
    private func answered(_ failures: inout Int, _ report: (Event) -> Void) {
        if failures > 0 { report(.recovered(afterFailures: failures)) }
        failures = 0
    }
}
