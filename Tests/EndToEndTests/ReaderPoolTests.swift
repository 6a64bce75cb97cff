import Foundation
import KeukentafelProtocol
@testable import KeukentafelServer
import Testing

/// The store's read connections (issue 23): reads run on connections of their own, up to a limit, so
/// the pulls a push wakes no longer wait one after another for a single connection.
@Suite struct ReaderPoolTests {
    @Test("a read while another holds a connection gets a second one, which sees the store's data too")
    func twoReadsAtOnceUseTwoConnections() throws {
        let store = try ServerStore(directory: try temporaryDirectory("readers"), dataModel: try shippedDataModel())
        let (outer, inner) = try store.reader.withConnection { first in
            // Before the pool this nested read waited for itself: one connection behind one lock.
            let second = try store.reader.withConnection { second in
                (second, try second.scalar("SELECT value FROM meta WHERE key = 'seq'"))
            }
            return (first, second)
        }
        #expect(outer !== inner.0)
        #expect(inner.1 == .integer(0))
        #expect(store.reader.openConnections == 2)
    }

    @Test("past its limit a reader waits for a connection to come back, and the pool never opens more")
    func readersWaitAtTheLimit() async throws {
        let opened = OpenedReaders()
        let store = try ServerStore(directory: try temporaryDirectory("readers"), dataModel: try shippedDataModel())
        let path = (store.directory as NSString).appendingPathComponent(ServerStore.fileName)
        let pool = ReaderPool(first: try opened.open(path), limit: 2) { try opened.open(path) }
        let thirdReader = ThirdReader()
        try pool.withConnection { _ in
            try pool.withConnection { _ in
                // Both are taken: a third reader on a thread of its own waits until one is given back.
                thirdReader.start(pool)
                while pool.waiting == 0 && opened.count == 2 { sched_yield() }
                #expect(pool.waiting == 1, "the third reader waits")
                #expect(opened.count == 2, "rather than opening a third connection")
            }
        }
        let thirdGot = try #require(await thirdReader.result())
        #expect(opened.connections.contains { ObjectIdentifier($0) == thirdGot }, "the third reader got one of the two")
        #expect(opened.count == 2, "the limit is two connections, whoever waited")
        #expect(pool.openConnections == 2)
    }

    @Test("a connection that fails to open is an error for that reader and frees its place")
    func aFailedOpenFreesItsPlace() throws {
        let store = try ServerStore(directory: try temporaryDirectory("readers"), dataModel: try shippedDataModel())
        let path = (store.directory as NSString).appendingPathComponent(ServerStore.fileName)
        let failing = Failing()
        let pool = ReaderPool(first: try SQLiteConnectionOpener.open(path), limit: 2) {
            if failing.once() { throw StoreError.corrupt("cannot open") }
            return try SQLiteConnectionOpener.open(path)
        }
        try pool.withConnection { _ -> Void in
            #expect(throws: StoreError.self) { try pool.withConnection { _ in } }
            #expect(pool.openConnections == 1, "the failed open gave its place back")
            let count = try pool.withConnection { try $0.scalar("SELECT count(*) FROM meta") }
            #expect(count != nil, "and the next reader opens one")
        }
        #expect(pool.openConnections == 2)
    }
}

/// Opens read connections and remembers them.
private final class OpenedReaders: @unchecked Sendable {
    private let lock = NSLock()
    private var opened: [any StoreConnection] = []
    var count: Int { lock.withLock { opened.count } }
    var connections: [any StoreConnection] { lock.withLock { opened } }
    func open(_ path: String) throws -> any StoreConnection {
        let connection = try SQLiteConnectionOpener.open(path)
        lock.withLock { opened.append(connection) }
        return connection
    }
}

/// A reader on a thread of its own (not the test's cooperative pool, which a waiting reader would block).
private final class ThirdReader: @unchecked Sendable {
    private let lock = NSLock()
    private var got: ObjectIdentifier?
    private var done: CheckedContinuation<ObjectIdentifier?, Never>?
    private var finished = false

    func start(_ pool: ReaderPool) {
        Thread {
            let got = try? pool.withConnection { ObjectIdentifier($0) }
            let waiter = self.lock.withLock { () -> CheckedContinuation<ObjectIdentifier?, Never>? in
                self.got = got
                self.finished = true
                return self.done
            }
            waiter?.resume(returning: got)
        }.start()
    }

    func result() async -> ObjectIdentifier? {
        await withCheckedContinuation { continuation in
            let ready = lock.withLock { () -> Bool in
                if finished { return true }
                done = continuation
                return false
            }
            if ready { continuation.resume(returning: lock.withLock { got }) }
        }
    }
}

private final class Failing: @unchecked Sendable {
    private let lock = NSLock()
    private var failed = false
    func once() -> Bool { lock.withLock { defer { failed = true }; return !failed } }
}

import KeukentafelSQLite

private enum SQLiteConnectionOpener {
    static func open(_ path: String) throws -> any StoreConnection {
        let connection = try SQLiteConnection(path: path)
        try connection.execute("PRAGMA query_only=ON")
        return connection
    }
}
