import Foundation

/// A device clock a test can move: real time plus an offset, strictly increasing between reads so
/// that the order of writes in a test is the order of their versions. Give it to
/// `TestServer.replica(_:clock:)`, then `setOffset` to make a laptop's clock run ahead or behind.
public final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var offset: Int64
    private var last: Int64 = 0

    public init(offsetMilliseconds: Int64 = 0) { self.offset = offsetMilliseconds }

    /// Sets the clock right (or wrong): like a real correction, this may move it backwards.
    public func setOffset(_ milliseconds: Int64) {
        lock.withLock {
            offset = milliseconds
            last = 0
        }
    }

    /// The clock function a replica reads (milliseconds since 1970).
    public var now: @Sendable () -> Int64 {
        { [self] in
            lock.withLock {
                last = max(last + 1, Int64(Date().timeIntervalSince1970 * 1000) + offset)
                return last
            }
        }
    }
}
