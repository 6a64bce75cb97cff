import Foundation

/// The store's read connections: pulls, authentication and the office's reads each take one for the
/// length of a read transaction, so on a machine with several cores that many read at once (issue 23:
/// a push that wakes thousands of long-polls had them read one after another on a single connection).
/// Connections open on first need, up to `limit`; past that a reader waits for one to come back.
///
/// Every connection reads its own snapshot: anything that must see one state of the store does so in
/// one `withConnection` call, never across two.
final class ReaderPool: @unchecked Sendable {
    private let condition = NSCondition()
    private var idle: [any StoreConnection]
    private var opened: Int
    private let limit: Int
    private let open: () throws -> any StoreConnection

    /// How many read connections a store opens at most: one per core, at least two, at most four (the
    /// writer is one more; on PostgreSQL each is a backend of its own).
    static var defaultLimit: Int { max(2, min(4, ProcessInfo.processInfo.activeProcessorCount)) }

    /// A pool holding `first`, opening more with `open` up to `limit` connections in all.
    init(first: any StoreConnection, limit: Int = ReaderPool.defaultLimit, open: @escaping () throws -> any StoreConnection) {
        idle = [first]
        opened = 1
        self.limit = max(1, limit)
        self.open = open
    }

    /// Runs `body` on a connection no one else uses meanwhile.
    func withConnection<T>(_ body: (any StoreConnection) throws -> T) throws -> T {
        let connection = try take()
        defer { give(back: connection) }
        return try body(connection)
    }

    /// Connections open now (for tests).
    var openConnections: Int { condition.withLock { opened } }

    private func take() throws -> any StoreConnection {
        condition.lock()
        while true {
            if let connection = idle.popLast() {
                condition.unlock()
                return connection
            }
            if opened < limit {
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
            condition.wait()
        }
    }

    private func give(back connection: any StoreConnection) {
        condition.withLock { idle.append(connection) }
        condition.signal()
    }
}
