import CKeukentafelCipher
import CSQLite
import Foundation

extension SQLiteConnection {
    /// Makes a new, still empty database ready for encryption: room for nonce and tag at the end of
    /// every page, and WAL mode set before the first page is written (a rollback journal would hold
    /// pages in clear text, so the VFS refuses to open one).
    public func formatForCipher() throws {
        guard cipher != nil else { return }
        let rc = kt_cipher_reserve_bytes(handle, Int32(SQLiteCipherKey.reservedBytesPerPage))
        guard rc == SQLITE_OK else { throw error(rc, sql: "SQLITE_FCNTL_RESERVE_BYTES") }
        try execute("PRAGMA page_size=\(KT_CIPHER_PAGE_SIZE); PRAGMA journal_mode=MEMORY; PRAGMA journal_mode=WAL;")
    }
}

extension SQLiteCipherKey {
    /// The URI that opens `path` through the encryption VFS with this key.
    func uri(for path: String) -> String {
        let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/".utf8)
        var escaped = ""
        for byte in path.utf8 {
            if allowed.contains(byte) { escaped.unicodeScalars.append(Unicode.Scalar(byte)) } else { escaped += String(format: "%%%02X", byte) }
        }
        return "file:\(escaped)?ktkey=\(identifier)"
    }
}
