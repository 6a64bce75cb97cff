import Foundation
import KeukentafelSQLite

/// The store's read connections: pulls, authentication and the office's reads each take one for the
/// length of a read transaction, so on a machine with several cores that many read at once (issue 23:
/// a push that wakes thousands of long-polls had them read one after another on a single connection).
///
/// Every connection reads its own snapshot: anything that must see one state of the store does so in
/// one `withConnection` call, never across two.
typealias ReaderPool = ConnectionPool<any StoreConnection>

extension ConnectionPool where Connection == any StoreConnection {
    /// How many read connections a store opens at most: one per core, at least two, at most four (the
    /// writer is one more; on PostgreSQL each is a backend of its own).
    static var defaultReaders: Int { max(2, min(4, ProcessInfo.processInfo.activeProcessorCount)) }

    /// The store's readers: `first`, and more opened with `open` up to `limit`.
    convenience init(first: any StoreConnection, limit: Int = defaultReaders, open: @escaping () throws -> any StoreConnection) {
        self.init(capacity: limit, idle: [first], open: open, closedError: { StoreError.corrupt("the store's read connections are closed") })
    }
}
