import Foundation
import KeukentafelProtocol
import KeukentafelSQLite

/// Online backup of the SQLite store, and restoring one while the server runs (decision 0011).
public struct Backups: Sendable {
    let store: ServerStore

    init(store: ServerStore) { self.store = store }

    /// An online backup of the store to `path`: consistent, taken while the server keeps serving. The
    /// file gets mode 0600 (it holds every resident's data); an existing file is replaced only with
    /// `replace`. With `key` the backup is encrypted (AES-256-GCM, decision 0027): the plain copy is
    /// made in the data directory, which holds the same data in the clear anyway, and removed after.
    public func backup(to path: String, key: BackupKey? = nil, replace: Bool = false, progress: (Int, Int) -> Void = { _, _ in }) throws {
        try store.requireSQLite("backup", instead: "back up the database with pg_dump")
        if FileManager.default.fileExists(atPath: path) {
            guard replace else { throw AdminError.invalid("'\(path)' exists; choose another file, or replace it with --force") }
            try FileManager.default.removeItem(atPath: path)
        }
        let source = try SQLiteConnection(path: (store.directory as NSString).appendingPathComponent(ServerStore.fileName), readOnly: true)
        guard let key else {
            try BackupCipher.createPrivate(path).close()
            do {
                try source.backup(to: path, replacing: false, progress: progress)
            } catch {
                try? FileManager.default.removeItem(atPath: path)
                throw error
            }
            return
        }
        let plain = (store.directory as NSString).appendingPathComponent(".backup-\(UUID().uuidString).sqlite")
        defer { removeDatabase(plain) }
        try BackupCipher.createPrivate(plain).close()
        try source.backup(to: plain, replacing: false, progress: progress)
        do {
            try BackupCipher.encrypt(plain, into: path, key: key)
        } catch {
            try? FileManager.default.removeItem(atPath: path)
            throw error
        }
    }

    /// Replaces the store's contents with a backup (`ktd admin backup`) while the server may run:
    /// SQLite's backup API copies the file into the open store in one write transaction; the server's
    /// connections see the restored state from their next transaction. The feed gets a new epoch, so
    /// every device notices that the store went back: it starts its feed over, keeps its unsent
    /// writes, and sends again its own writes the restored store lacks (decision 0011).
    public func restore(from path: String, key: BackupKey? = nil, actor: String) throws -> (sequence: Int64, epoch: String, erasedAgain: Int) {
        try store.requireSQLite("restore", instead: "restore with pg_restore; the first device that was ahead of the restored "
                          + "database makes the server start a new feed epoch, and every device recovers as after `ktd admin restore`")
        guard FileManager.default.fileExists(atPath: path) else { throw AdminError.notFound("no backup file at '\(path)'") }
        if BackupCipher.isEncrypted(path) {
            guard let key else { throw AdminError.invalid("'\(path)' is an encrypted backup: give the key it was made with (--key-file)") }
            let plain = (store.directory as NSString).appendingPathComponent(".restore-\(UUID().uuidString).sqlite")
            defer { removeDatabase(plain) }
            try BackupCipher.decrypt(path, into: plain, key: key)
            return try restore(from: plain, actor: actor, named: path)
        }
        return try restore(from: path, actor: actor, named: path)
    }

    private func restore(from path: String, actor: String, named name: String) throws -> (sequence: Int64, epoch: String, erasedAgain: Int) {
        let source = try SQLiteConnection(path: path, readOnly: true)
        guard case .text("ok")? = try source.scalar("PRAGMA integrity_check") else {
            throw AdminError.invalid("'\(name)' is damaged (PRAGMA integrity_check failed); nothing was restored")
        }
        guard (try? source.scalar("SELECT value FROM meta WHERE key = 'seq'")) != nil else {
            throw AdminError.invalid("'\(name)' is not a Keukentafel store backup (no meta table)")
        }
        do {
            try StoreSchema.refuseNewerLayout(source)
        } catch StoreError.newerLayout(let layout, let known) {
            throw AdminError.invalid("'\(name)' is a backup of a store in layout \(layout), made by a newer ktd; this ktd knows layouts "
                                     + "up to \(known): restore it with that ktd; nothing was restored")
        }
        let epoch = NodeID.random().description
        // Erasures are never undone: what was erased since the backup is erased again after it.
        let erased = try store.reader.withConnection { connection in
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
            try connection.transaction {
                // The backup's numbers for columns, with numbers for the model's columns it lacks.
                store.columnNames.replace(with: try ColumnNames.register(ColumnNames.columns(of: store.dataModel), connection))
                // The backup's devices: one added since (and gone with the restore) may leave a number free.
                store.deviceNumbers.replace(with: try DeviceNumbers.read(connection))
                try store.links.prepare(connection, columns: store.columnNames, devices: store.deviceNumbers)
            }
            try connection.setMeta("epoch", .text(epoch))
            try store.audit.append(connection, actor: actor, action: "restore", subject: name, detail: "new epoch \(epoch)")
            return try connection.scalar("SELECT value FROM meta WHERE key = 'seq'")?.int64 ?? 0
        }
        let again = try store.erasure.eraseAgain(erased, actor: actor)
        return (sequence, epoch, again?.rows ?? 0)
    }
}

/// Removes a database file with its log and shared-memory files.
private func removeDatabase(_ path: String) {
    for suffix in ["", "-wal", "-shm", "-journal"] { try? FileManager.default.removeItem(atPath: path + suffix) }
}
