import Foundation

/// Connections handed out one caller at a time, opened on first need up to `capacity`; past that a
/// caller waits (blocking its thread) for one to come back. The replica's read connections (the app's
/// queries never wait for the writer) and the server store's (a push that wakes thousands of
/// long-polls has them read on every core) are such pools.
public final class ConnectionPool<Connection>: @unchecked Sendable {
    private let condition = NSCondition()
    private var idle: [Connection]
    private var opened: Int
    private var waiters = 0
    private var closed = false
    public let capacity: Int
    private let open: () throws -> Connection
    private let closedError: () -> any Error

    /// A pool holding `idle` (opened already), opening more with `open` up to `capacity` in all; after
    /// `close()`, callers get `closedError()`.
    public init(capacity: Int, idle: [Connection] = [], open: @escaping () throws -> Connection,
                closedError: @escaping () -> any Error) {
        self.idle = idle
        opened = idle.count
        self.capacity = max(1, capacity)
        self.open = open
        self.closedError = closedError
    }

    /// Runs `body` on a connection no one else uses meanwhile.
    public func withConnection<T>(_ body: (Connection) throws -> T) throws -> T {
        let connection = try checkOut()
        defer { checkIn(connection) }
        return try body(connection)
    }

    /// Runs `body` on a connection opened for it alone, outside the pool and its limit, and dropped
    /// after: for a rare read made while the caller may hold one of the pool's connections itself.
    public func withUnpooledConnection<T>(_ body: (Connection) throws -> T) throws -> T {
        try body(try open())
    }

    /// Drops the idle connections and refuses further callers; connections in use are dropped when they come back.
    public func close() {
        condition.withLock {
            closed = true
            opened -= idle.count
            idle.removeAll()
        }
        condition.broadcast()
    }

    /// Connections open now (for tests and metrics).
    public var openConnections: Int { condition.withLock { opened } }

    /// Callers waiting for a connection to come back (for tests).
    public var waiting: Int { condition.withLock { waiters } }

    private func checkOut() throws -> Connection {
        condition.lock()
        while true {
            if closed {
                condition.unlock()
                throw closedError()
            }
            if let connection = idle.popLast() {
                condition.unlock()
                return connection
            }
            if opened < capacity {
                opened += 1
                condition.unlock()
                do {
                    return try open()
                } catch {
                    condition.withLock { opened -= 1 }
                    condition.signal()
                    throw error
                }
            }
            waiters += 1
            condition.wait()
            waiters -= 1
        }
    }

    private func checkIn(_ connection: Connection) {
        condition.withLock {
            if closed { opened -= 1 } else { idle.append(connection) }
        }
        condition.signal()
    }
}
