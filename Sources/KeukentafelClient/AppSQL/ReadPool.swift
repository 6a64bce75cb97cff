import Foundation
import KeukentafelProtocol
import KeukentafelSQLite

/// Read-only connections to a replica, so that the app's queries never wait for the writer: a page
/// being applied, an eviction, a local write (decision 0021).
///
/// The replica is in WAL mode, where a reader sees the last committed state while the writer goes
/// on. Connections are opened when first needed, up to `capacity`; a reader beyond that waits for
/// one to come back. Each keeps the app's access rules (`AppAccess`).
final class ReadPool: Sendable {
    let path: String
    let cipher: SQLiteCipherKey?
    private let pool: ConnectionPool<SQLiteConnection>

    init(path: String, cipher: SQLiteCipherKey?, capacity: Int = 4) {
        self.path = path
        self.cipher = cipher
        pool = ConnectionPool(capacity: capacity, open: { try Self.open(path, cipher: cipher) },
                              closedError: { ReplicaError.notInitialized("the replica at '\(path)' was wiped") })
    }

    var capacity: Int { pool.capacity }

    /// Runs `body` on a read connection of its own for the duration.
    func read<T>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        try pool.withConnection(body)
    }

    /// Closes every idle connection and refuses new reads (the replica was wiped).
    func close() {
        pool.close()
    }

    private static func open(_ path: String, cipher: SQLiteCipherKey?) throws -> SQLiteConnection {
        let connection = try SQLiteConnection(path: path, readOnly: true, cipher: cipher)
        try connection.execute("PRAGMA cache_size=-8192; PRAGMA temp_store=MEMORY;")
        connection.setAuthorizer(AppAccess.decideRead)
        // The pure functions a query may use; the ones that write (kt_tick, kt_capture) stay with the writer.
        try Replica.registerVersionFunctions(on: connection)
        try connection.createFunction("kt_new_id", argumentCount: 0) { _ in .value(.text(RowID.new())) }
        return connection
    }
}
