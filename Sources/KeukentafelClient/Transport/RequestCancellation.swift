import Foundation

/// A switch that ends the requests made under it: `cancel()` stops a request in flight at once (the
/// transport wakes from its wait), and every later request under it fails with `CancellationError`
/// before it is sent. A sync step interrupted this way is safe to run again: a push whose answer was
/// lost is sent again with the same change ids, and a page counts only once it is applied.
public final class RequestCancellation: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false
    private var handlers: [Int: @Sendable () -> Void] = [:]
    private var nextKey = 0

    public init() {}

    public var isCancelled: Bool { lock.withLock { cancelled } }

    /// Cancels once; the handlers registered so far run on the calling thread.
    public func cancel() {
        let toRun = lock.withLock { () -> [@Sendable () -> Void] in
            guard !cancelled else { return [] }
            cancelled = true
            defer { handlers = [:] }
            return Array(handlers.values)
        }
        for handler in toRun { handler() }
    }

    /// Runs `handler` when this is cancelled, at once if it already is. Returns the key that
    /// `removeHandler` takes when the work it guards ends first.
    @discardableResult
    public func onCancel(_ handler: @escaping @Sendable () -> Void) -> Int? {
        let key = lock.withLock { () -> Int? in
            guard !cancelled else { return nil }
            nextKey += 1
            handlers[nextKey] = handler
            return nextKey
        }
        if key == nil { handler() }
        return key
    }

    public func removeHandler(_ key: Int?) {
        guard let key else { return }
        lock.withLock { _ = handlers.removeValue(forKey: key) }
    }

    /// Throws `CancellationError` when cancelled.
    public func check() throws {
        if isCancelled { throw CancellationError() }
    }

    /// A cancellation that ends when any of `parents` does (e.g. the sync step or a wake-up).
    static func any(_ parents: [RequestCancellation]) -> (RequestCancellation, release: () -> Void) {
        let child = RequestCancellation()
        let keys = parents.map { parent in (parent, parent.onCancel { child.cancel() }) }
        return (child, { for (parent, key) in keys { parent.removeHandler(key) } })
    }
}
