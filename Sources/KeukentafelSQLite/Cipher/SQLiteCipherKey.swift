import CKeukentafelCipher
import CSQLite
import Crypto
import Foundation
import Synchronization

/// The 256-bit key of an encrypted database, for `SQLiteConnection(path:cipher:)`.
///
/// Every page of the file and of its write-ahead log is sealed with AES-256-GCM by the VFS in
/// `CKeukentafelCipher` (decision 0029): a page that fails authentication is an I/O error
/// (`SQLITE_IOERR_DATA`), never data. The key is handed to the VFS by an identifier in the database's
/// URI, never as text; it stays usable while this object or a connection opened with it lives.
public final class SQLiteCipherKey: @unchecked Sendable {
    let key: SymmetricKey
    /// How connections name this key to the VFS (`ktkey=` in their URI).
    let identifier: String

    /// `bytes` must be 32 bytes.
    public init<Bytes: ContiguousBytes>(bytes: Bytes) {
        let key = SymmetricKey(data: bytes)
        precondition(key.bitCount == 256, "an SQLite cipher key is 256 bits")
        self.key = key
        self.identifier = UUID().uuidString
        CipherKeyRegistry.shared.add(self)
    }

    deinit { CipherKeyRegistry.shared.remove(identifier) }

    /// A new random key.
    public static func random() -> SQLiteCipherKey { SQLiteCipherKey(bytes: SymmetricKey(size: .bits256)) }

    /// The bytes that must be reserved at the end of every page (nonce and tag).
    public static let reservedBytesPerPage = Int(KT_CIPHER_RESERVE)
}

/// The keys the VFS may ask for, by identifier. Weak: a key no connection and no owner holds is gone.
final class CipherKeyRegistry: Sendable {
    static let shared = CipherKeyRegistry()
    private struct Entry { weak var key: SQLiteCipherKey? }
    private let entries = Mutex<[String: Entry]>([:])

    func add(_ key: SQLiteCipherKey) { entries.withLock { $0[key.identifier] = Entry(key: key) } }
    func remove(_ identifier: String) { _ = entries.withLock { $0.removeValue(forKey: identifier) } }
    func find(_ identifier: String) -> SQLiteCipherKey? { entries.withLock { $0[identifier]?.key } }
}
