import Crypto
import Foundation
import KeukentafelSQLite

/// How a new replica keeps its file on disk (`Replica.create`, `Replica.connect`).
public enum ReplicaEncryption: Sendable {
    /// A plain SQLite file, readable by whoever copies it. For tests and servers with encrypted disks.
    case none
    /// Every page of the file and its write-ahead log encrypted with a random key, which is kept in
    /// `<replica>.key` wrapped by a key derived from this passphrase (decision 0029).
    case passphrase(String)
}

/// The unlocked key of an encrypted replica: unlock once (the passphrase derivation takes a moment
/// on purpose), then open the replica as often as needed with `Replica(path:key:)`.
///
/// ```swift
/// let key = try ReplicaKey.unlock(replicaPath: "laptop.sqlite", passphrase: passphrase)
/// let replica = try Replica(path: "laptop.sqlite", key: key)
/// ```
public final class ReplicaKey: Sendable {
    let cipher: SQLiteCipherKey

    init(cipher: SQLiteCipherKey) { self.cipher = cipher }

    /// Unlocks the key of the replica at `replicaPath` (a plain replica has none: `nil`).
    /// Throws `ReplicaError.wrongPassphrase` when the passphrase does not unwrap it; nothing is changed.
    public static func unlock(replicaPath: String, passphrase: String) throws -> ReplicaKey? {
        let keyPath = ReplicaKeyFile.path(forReplica: replicaPath)
        guard FileManager.default.fileExists(atPath: keyPath) else { return nil }
        return ReplicaKey(cipher: try ReplicaKeyFile.read(from: keyPath).unwrap(passphrase: passphrase, replicaPath: replicaPath))
    }
}

extension Replica {
    /// Whether the replica at `path` is encrypted (it has a key file, `<path>.key`).
    public static func isEncrypted(path: String) -> Bool {
        FileManager.default.fileExists(atPath: ReplicaKeyFile.path(forReplica: path))
    }

    /// Whether this replica's file is encrypted.
    public var isEncrypted: Bool { connection.cipher != nil }

    /// Gives an encrypted replica a new passphrase. Only the small key file is rewritten (atomically);
    /// the data stays as it is, encrypted with the same key. A wrong `old` passphrase changes nothing.
    public static func changePassphrase(path: String, from old: String, to new: String) throws {
        let keyPath = ReplicaKeyFile.path(forReplica: path)
        guard FileManager.default.fileExists(atPath: keyPath) else {
            throw ReplicaError.notEncrypted("'\(path)' is not encrypted (there is no key file '\(keyPath)'), so it has no passphrase to change")
        }
        try ReplicaKeyFile.checkPassphrase(new)
        let file = try ReplicaKeyFile.read(from: keyPath)
        let dataKey = try file.unwrapBytes(passphrase: old, replicaPath: path)
        try ReplicaKeyFile.wrap(dataKey: dataKey, passphrase: new).write(to: keyPath)
    }
}
