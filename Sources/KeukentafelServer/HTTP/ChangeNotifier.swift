import Foundation

/// Wakes long-polling pulls when a push commits. Waiters hold only a continuation, so thousands of
/// idle long-polls cost little memory and no CPU.
public final class ChangeNotifier: @unchecked Sendable {
    private let lock = NSLock()
    private var waiters: [UUID: CheckedContinuation<Void, Never>] = [:]
    private var generation: UInt64 = 0
    private var closed = false

    /// A notifier with nobody waiting.
    public init() {}

    /// The number of long-polls currently waiting (for metrics and tests).
    public var waiting: Int { lock.withLock { waiters.count } }

    /// Wakes every waiter.
    public func signal() {
        let woken = lock.withLock { () -> [CheckedContinuation<Void, Never>] in
            generation &+= 1
            defer { waiters.removeAll() }
            return Array(waiters.values)
        }
        for continuation in woken { continuation.resume() }
    }

    /// Ends every wait, now and later: the server is shutting down, and a long-poll must answer now
    /// rather than hold the shutdown up until its deadline.
    public func close() {
        lock.withLock { closed = true }
        signal()
    }

    /// Whether `close()` was called.
    public var isClosed: Bool { lock.withLock { closed } }

    /// The current generation: pass it to `wait(after:timeout:)` to not miss a signal that comes
    /// between checking the store and starting to wait.
    public var currentGeneration: UInt64 { lock.withLock { generation } }

    /// Returns after the next signal following `generation`, or after `timeout`, or on cancellation.
    public func wait(after generation: UInt64, timeout: Duration) async {
        let id = UUID()
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = self.lock.withLock { () -> Bool in
                        if self.generation != generation || self.closed { return true }
                        self.waiters[id] = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
            // Whichever finished first, make sure the continuation does not stay registered.
            let pending = self.lock.withLock { self.waiters.removeValue(forKey: id) }
            pending?.resume()
        }
    }
}
