import Foundation

/// Wakes long-polling pulls when a push commits: only those of devices the push concerns
/// (`ChangeFootprint`, issue 23); the others sleep on until their deadline or a push that does. Waiters
/// hold only a continuation and their test, so thousands of idle long-polls cost little memory and no CPU.
public final class ChangeNotifier: @unchecked Sendable {
    private struct Waiter {
        var continuation: CheckedContinuation<Void, Never>
        var concerns: @Sendable (ChangeFootprint) -> Bool
        var deadline: ContinuousClock.Instant
    }

    private let lock = NSLock()
    private var waiters: [UInt64: Waiter] = [:]
    private var nextID: UInt64 = 0
    private var generation: UInt64 = 0
    /// The latest signals, so a long-poll that read the store just before one does not miss it.
    private var recent: [(generation: UInt64, footprint: ChangeFootprint)] = []
    private var woken = 0
    private var closed = false
    /// Whether the task that ends waits at their deadline runs (only while someone waits).
    private var reaping = false

    /// How late a wait may end after its deadline: the reaper looks this often while anyone waits.
    static let deadlineResolution: Duration = .milliseconds(100)

    /// A notifier with nobody waiting.
    public init() {}

    /// The number of long-polls currently waiting (for metrics and tests).
    public var waiting: Int { lock.withLock { waiters.count } }

    /// How many waiting long-polls signals have woken so far (not those that ran out): a push that
    /// concerns one team wakes that team's devices only (for metrics and tests).
    public var wakeUps: Int { lock.withLock { woken } }

    /// Wakes the waiters `footprint` concerns (by default every one).
    public func signal(_ footprint: ChangeFootprint = .everyone) {
        let resumed = lock.withLock { () -> [CheckedContinuation<Void, Never>] in
            generation &+= 1
            recent.append((generation, footprint))
            if recent.count > 64 { recent.removeFirst(recent.count - 64) }
            let ids = waiters.compactMap { id, waiter in waiter.concerns(footprint) ? id : nil }
            woken += ids.count
            return ids.compactMap { waiters.removeValue(forKey: $0)?.continuation }
        }
        for continuation in resumed { continuation.resume() }
    }

    /// Ends every wait, now and later: the server is shutting down, and a long-poll must answer now
    /// rather than hold the shutdown up until its deadline.
    public func close() {
        let resumed = lock.withLock { () -> [CheckedContinuation<Void, Never>] in
            closed = true
            generation &+= 1
            defer { waiters.removeAll() }
            return waiters.values.map(\.continuation)
        }
        for continuation in resumed { continuation.resume() }
    }

    /// Whether `close()` was called.
    public var isClosed: Bool { lock.withLock { closed } }

    /// The current generation: pass it to `wait(after:timeout:concerns:)` to not miss a signal that
    /// comes between checking the store and starting to wait.
    public var currentGeneration: UInt64 { lock.withLock { generation } }

    /// Whether a signal after `generation` may concern the waiter (also when too many came to tell).
    private func missedSignal(after generation: UInt64, _ concerns: (ChangeFootprint) -> Bool) -> Bool {
        guard self.generation != generation else { return false }
        guard let oldest = recent.first?.generation, oldest <= generation &+ 1 else { return true }
        return recent.contains { $0.generation > generation && concerns($0.footprint) }
    }

    /// Returns after the next signal following `generation` that `concerns` the waiter, or after
    /// `timeout` (at most `deadlineResolution` late), or on cancellation, or when the notifier closes.
    ///
    /// A wait is one continuation in a dictionary: no task, no timer of its own (issue 23: thousands of
    /// idle long-polls). One reaper task, alive while anyone waits, ends the waits whose deadline passed.
    public func wait(after generation: UInt64, timeout: Duration, concerns: @escaping @Sendable (ChangeFootprint) -> Bool = { _ in true }) async {
        let deadline = ContinuousClock.now + timeout
        let id = lock.withLock { () -> UInt64 in
            nextID &+= 1
            return nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let (resumeNow, startReaper) = lock.withLock { () -> (Bool, Bool) in
                    // A cancellation before this point found nothing to resume: it is seen here instead.
                    if closed || Task.isCancelled || ContinuousClock.now >= deadline || missedSignal(after: generation, concerns) { return (true, false) }
                    waiters[id] = Waiter(continuation: continuation, concerns: concerns, deadline: deadline)
                    guard !reaping else { return (false, false) }
                    reaping = true
                    return (false, true)
                }
                if resumeNow { continuation.resume() }
                if startReaper { Task { await self.reap() } }
            }
        } onCancel: {
            let pending = lock.withLock { waiters.removeValue(forKey: id) }
            pending?.continuation.resume()
        }
    }

    /// Ends the waits whose deadline passed, looking again at the nearest deadline (or after
    /// `deadlineResolution`, for waits that come meanwhile), until nobody waits.
    private func reap() async {
        while true {
            let now = ContinuousClock.now
            let (expired, nearest) = lock.withLock { () -> ([CheckedContinuation<Void, Never>], ContinuousClock.Instant?) in
                var ended: [UInt64] = []
                var nearest: ContinuousClock.Instant?
                for (id, waiter) in waiters {
                    if waiter.deadline <= now {
                        ended.append(id)
                    } else if nearest.map({ waiter.deadline < $0 }) ?? true {
                        nearest = waiter.deadline
                    }
                }
                let expired = ended.compactMap { waiters.removeValue(forKey: $0)?.continuation }
                if waiters.isEmpty { reaping = false }
                return (expired, nearest)
            }
            for continuation in expired { continuation.resume() }
            guard let nearest else { return }
            try? await Task.sleep(until: min(nearest, now + Self.deadlineResolution), clock: .continuous)
        }
    }
}
