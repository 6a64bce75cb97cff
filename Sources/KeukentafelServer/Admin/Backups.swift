import Foundation
import KeukentafelProtocol
import KeukentafelSQLite

/// Online backup of the SQLite store, and restoring one while the server runs (decision 0011).
public struct Backups: Sendable {
    let store: ServerStore

    init(store: ServerStore) { self.store = store }

    /// An online backup of the store to `path`: consistent, taken while the server keeps serving.
    public func backup(to path: String, progress: (Int, Int) -> Void = { _, _ in }) throws {
        try store.requireSQLite("backup", instead: "back up the database with pg_dump")
        let source = try SQLiteConnection(path: (store.directory as NSString).appendingPathComponent(ServerStore.fileName), readOnly: true)
        try source.backup(to: path, progress: progress)
    }

    /// Replaces the store's contents with a backup (`ktd admin backup`) while the server may run:
    /// SQLite's backup API copies the file into the open store in one write transaction; the server's
    /// connections see the restored state from their next transaction. The feed gets a new epoch, so
    /// every device notices that the store went back: it starts its feed over, keeps its unsent
    /// writes, and sends again its own writes the restored store lacks (decision 0011).
    public func restore(from path: String, actor: String) throws -> (sequence: Int64, epoch: String, erasedAgain: Int) {
        try store.requireSQLite("restore", instead: "restore with pg_restore; the first device that was ahead of the restored "
                          + "database makes the server start a new feed epoch, and every device recovers as after `ktd admin restore`")
        guard FileManager.default.fileExists(atPath: path) else { throw AdminError.notFound("no backup file at '\(path)'") }
        let source = try SQLiteConnection(path: path, readOnly: true)
        guard case .text("ok")? = try source.scalar("PRAGMA integrity_check") else {
            throw AdminError.invalid("'\(path)' is damaged (PRAGMA integrity_check failed); nothing was restored")
        }
        guard (try? source.scalar("SELECT value FROM meta WHERE key = 'seq'")) != nil else {
            throw AdminError.invalid("'\(path)' is not a Keukentafel store backup (no meta table)")
        }
        let epoch = NodeID.random().description
        // Erasures are never undone: what was erased since the backup is erased again after it.
        let erased = try store.reader.withLock { connection in
            try connection.query("SELECT tbl, row_id FROM erased_rows").compactMap { row -> (table: String, key: String)? in
                guard let table = row[0].string, let key = row[1].string else { return nil }
                return (table, key)
            }
        }
        let sequence = try store.writer.withLock { connection -> Int64 in
            guard let connection = connection as? SQLiteConnection else { throw AdminError.invalid("restore needs the SQLite store") }
            try source.copy(into: connection)
            // A backup from an older release: the tables added since, then its migrations, as on open.
            try connection.execute(StoreSchema.sqlite)
            try StoreSchema.migrate(connection)
            try connection.transaction { try store.links.prepare(connection) }
            try connection.setMeta("epoch", .text(epoch))
            try store.audit.append(connection, actor: actor, action: "restore", subject: path, detail: "new epoch \(epoch)")
            return try connection.scalar("SELECT value FROM meta WHERE key = 'seq'")?.int64 ?? 0
        }
        let again = try store.erasure.eraseAgain(erased, actor: actor)
        return (sequence, epoch, again?.rows ?? 0)
    }
}
