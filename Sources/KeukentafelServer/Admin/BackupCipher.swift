import Crypto
import Foundation

/// A key the operator keeps to encrypt backups with (`ktd admin backup --key-file`): 32 random bytes,
/// e.g. `head -c 32 /dev/urandom > /etc/keukentafel/backup.key` (kept apart from the backups).
public struct BackupKey: Sendable {
    private let bytes: [UInt8]
    var key: SymmetricKey { SymmetricKey(data: bytes) }

    /// Reads a key file: 32 bytes as they are, or as 64 hexadecimal digits, or as base64.
    public init(file path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AdminError.notFound("no backup key file at '\(path)'")
        }
        if data.count == 32 {
            bytes = Array(data)
            return
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if text.utf8.count == 64, let decoded = hexBytes(text) {
            bytes = decoded
        } else if let decoded = Data(base64Encoded: text), decoded.count == 32 {
            bytes = Array(decoded)
        } else {
            throw AdminError.invalid("'\(path)' is not a backup key: it must hold 32 bytes (raw, 64 hexadecimal digits or base64); "
                + "make one with: head -c 32 /dev/urandom > \(path); chmod 600 \(path)")
        }
    }

    /// A key of these 32 bytes.
    public init(bytes: [UInt8]) throws {
        guard bytes.count == 32 else { throw AdminError.invalid("a backup key is 32 bytes, not \(bytes.count)") }
        self.bytes = bytes
    }
}

/// The encrypted backup file (decision 0027): a header, then the plain backup in segments of 1 MiB,
/// each sealed with AES-256-GCM. A segment's nonce is the file's random prefix and the segment's
/// number; its authenticated data is the header, the number and whether it is the last, so segments
/// cannot be reordered, swapped between files or cut off at the end unnoticed.
enum BackupCipher {
    static let magic = Array("KTBACKUP".utf8)
    static let version: UInt8 = 1
    static let segmentSize = 1 << 20
    static let headerSize = 8 + 1 + 4 + 4 + 16

    /// Whether the file at `path` starts like an encrypted backup.
    static func isEncrypted(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: magic.count)).map { Array($0) == magic } ?? false
    }

    /// Encrypts the file `plain` into `sealed` (created with mode 0600; must not exist).
    static func encrypt(_ plain: String, into sealed: String, key: BackupKey) throws {
        guard let input = FileHandle(forReadingAtPath: plain) else { throw AdminError.notFound("cannot read '\(plain)'") }
        defer { try? input.close() }
        let output = try createPrivate(sealed)
        defer { try? output.close() }
        var header = magic + [version]
        header += bigEndian(UInt32(segmentSize))
        let prefix = (0..<4).map { _ in UInt8.random(in: 0...255) }
        header += prefix
        header += (0..<16).map { _ in UInt8.random(in: 0...255) }  // the file's own id, in every segment's authenticated data
        try output.write(contentsOf: header)
        var index: UInt64 = 0
        var current = try input.read(upToCount: segmentSize) ?? Data()
        while true {
            let next = current.count == segmentSize ? (try input.read(upToCount: segmentSize) ?? Data()) : Data()
            let last = next.isEmpty
            let box = try AES.GCM.seal(current, using: key.key, nonce: try nonce(prefix, index),
                                       authenticating: Data(header + bigEndian(index) + [last ? 1 : 0]))
            try output.write(contentsOf: box.ciphertext + box.tag)
            if last { break }
            current = next
            index += 1
        }
        try output.synchronize()
    }

    /// Decrypts the encrypted backup `sealed` into `plain` (created with mode 0600; must not exist).
    static func decrypt(_ sealed: String, into plain: String, key: BackupKey) throws {
        guard let input = FileHandle(forReadingAtPath: sealed) else { throw AdminError.notFound("cannot read '\(sealed)'") }
        defer { try? input.close() }
        let header = Array(try input.read(upToCount: headerSize) ?? Data())
        guard header.count == headerSize, Array(header.prefix(magic.count)) == magic else {
            throw AdminError.invalid("'\(sealed)' is not an encrypted Keukentafel backup")
        }
        guard header[8] == version else { throw AdminError.invalid("'\(sealed)' is an encrypted backup of version \(header[8]); this ktd reads version \(version)") }
        let size = Int(header[9..<13].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        guard size > 0, size <= 64 << 20 else { throw AdminError.invalid("'\(sealed)' is damaged (segment size \(size))") }
        let prefix = Array(header[13..<17])
        let output = try createPrivate(plain)
        defer { try? output.close() }
        var index: UInt64 = 0
        var current = try input.read(upToCount: size + 16) ?? Data()
        while true {
            guard current.count > 16 || (current.count == 16 && index == 0) else {
                throw AdminError.invalid("'\(sealed)' is cut short: its last part is missing")
            }
            let next = try input.read(upToCount: size + 16) ?? Data()
            let last = next.isEmpty
            let box = try AES.GCM.SealedBox(nonce: try nonce(prefix, index), ciphertext: current.prefix(current.count - 16),
                                            tag: current.suffix(16))
            let opened: Data
            do {
                opened = try AES.GCM.open(box, using: key.key, authenticating: Data(header + bigEndian(index) + [last ? 1 : 0]))
            } catch {
                throw AdminError.invalid(index == 0
                    ? "the key does not open '\(sealed)' (another key, or the file is damaged); nothing was restored"
                    : "'\(sealed)' is damaged or cut short at part \(index + 1); nothing was restored")
            }
            try output.write(contentsOf: opened)
            if last { break }
            current = next
            index += 1
        }
        try output.synchronize()
    }

    /// A new file with mode 0600, refusing to replace one.
    static func createPrivate(_ path: String) throws -> FileHandle {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else {
            if errno == EEXIST { throw AdminError.invalid("'\(path)' exists; it is not replaced") }
            throw AdminError.invalid("cannot create '\(path)': \(String(cString: strerror(errno)))")
        }
        return FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    private static func nonce(_ prefix: [UInt8], _ index: UInt64) throws -> AES.GCM.Nonce {
        try AES.GCM.Nonce(data: prefix + bigEndian(index))
    }

    private static func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }
}

private func hexBytes(_ text: String) -> [UInt8]? {
    var bytes: [UInt8] = []
    var iterator = text.utf8.makeIterator()
    while let high = iterator.next(), let low = iterator.next() {
        guard let h = hexValue(high), let l = hexValue(low) else { return nil }
        bytes.append(h << 4 | l)
    }
    return bytes.count == 32 ? bytes : nil
}

private func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}
