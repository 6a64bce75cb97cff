import Crypto
import _CryptoExtras
import Foundation
import KeukentafelSQLite

/// The key file next to an encrypted replica, `<replica>.key`: the replica's random 256-bit data key,
/// sealed (AES-256-GCM) with a key derived from the passphrase by scrypt (decision 0029).
///
/// Changing the passphrase rewrites only this file. Destroying it makes the replica unreadable, which
/// is what a remote wipe does first.
struct ReplicaKeyFile: Codable {
    var format = "keukentafel-replica-key"
    var version = 1
    var kdf = "scrypt"
    /// scrypt's cost (N), block size (r) and parallelism (p).
    var cost: Int
    var blockSize: Int
    var parallelism: Int
    var salt: Data
    var cipher = "AES-256-GCM"
    /// nonce | ciphertext | tag
    var wrappedKey: Data

    /// N = 2^15, r = 8: 32 MiB and about 0.15 s per attempt (measured: opening takes 0.16 s, docs/benchmarks.md),
    /// the interactive setting scrypt's author recommends; guessing a passphrase from a stolen key file costs as much per guess.
    static let defaultCost = 1 << 15
    static let defaultBlockSize = 8
    static let associatedData = Data("keukentafel replica key v1".utf8)
    static let minimumPassphraseLength = 8

    static func path(forReplica replica: String) -> String { replica + ".key" }

    static func checkPassphrase(_ passphrase: String) throws {
        guard passphrase.count >= minimumPassphraseLength else {
            throw ReplicaError.weakPassphrase("a passphrase has at least \(minimumPassphraseLength) characters")
        }
    }

    /// A new random data key, wrapped by `passphrase`.
    static func create(passphrase: String) throws -> (file: ReplicaKeyFile, key: SQLiteCipherKey) {
        try checkPassphrase(passphrase)
        let dataKey = SymmetricKey(size: .bits256)
        return (try wrap(dataKey: dataKey, passphrase: passphrase), SQLiteCipherKey(bytes: dataKey))
    }

    static func wrap(dataKey: SymmetricKey, passphrase: String) throws -> ReplicaKeyFile {
        let salt = Data(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) })
        let wrapping = try derive(passphrase: passphrase, salt: salt, cost: defaultCost, blockSize: defaultBlockSize, parallelism: 1)
        let sealed = try dataKey.withUnsafeBytes {
            try AES.GCM.seal($0, using: wrapping, authenticating: associatedData)
        }
        guard let combined = sealed.combined else { throw ReplicaError.damagedKeyFile("could not seal the replica key") }
        return ReplicaKeyFile(cost: defaultCost, blockSize: defaultBlockSize, parallelism: 1, salt: salt, wrappedKey: combined)
    }

    func unwrap(passphrase: String, replicaPath: String) throws -> SQLiteCipherKey {
        SQLiteCipherKey(bytes: try unwrapBytes(passphrase: passphrase, replicaPath: replicaPath))
    }

    func unwrapBytes(passphrase: String, replicaPath: String) throws -> SymmetricKey {
        let wrapping = try Self.derive(passphrase: passphrase, salt: salt, cost: cost, blockSize: blockSize, parallelism: parallelism)
        do {
            let box = try AES.GCM.SealedBox(combined: wrappedKey)
            return SymmetricKey(data: try AES.GCM.open(box, using: wrapping, authenticating: Self.associatedData))
        } catch {
            throw ReplicaError.wrongPassphrase("wrong passphrase for the replica '\(replicaPath)'; nothing was changed")
        }
    }

    private static func derive(passphrase: String, salt: Data, cost: Int, blockSize: Int, parallelism: Int) throws -> SymmetricKey {
        try KDF.Scrypt.deriveKey(from: Data(passphrase.utf8), salt: salt, outputByteCount: 32,
                                 rounds: cost, blockSize: blockSize, parallelism: parallelism)
    }

    static func read(from path: String) throws -> ReplicaKeyFile {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ReplicaError.damagedKeyFile("cannot read the key file '\(path)': \(error.localizedDescription)")
        }
        guard let file = try? JSONDecoder().decode(ReplicaKeyFile.self, from: data), file.format == "keukentafel-replica-key" else {
            throw ReplicaError.damagedKeyFile("'\(path)' is not a Keukentafel key file (it was damaged, or wiped); the replica cannot be opened")
        }
        guard file.version == 1, file.kdf == "scrypt", file.cipher == "AES-256-GCM" else {
            throw ReplicaError.damagedKeyFile("the key file '\(path)' is of a newer release (version \(file.version), \(file.kdf), \(file.cipher))")
        }
        // A changed file must not make the derivation take a machine's memory (scrypt uses 128 · N · r · p bytes).
        guard file.cost >= 2, file.cost <= 1 << 20, file.cost & (file.cost - 1) == 0, (1...32).contains(file.blockSize),
              (1...16).contains(file.parallelism), file.salt.count >= 16 else {
            throw ReplicaError.damagedKeyFile("the key file '\(path)' has scrypt settings out of bounds (N \(file.cost), r \(file.blockSize), "
                                              + "p \(file.parallelism)); it was changed or damaged")
        }
        return file
    }

    /// Writes the file with mode 0600 through a temporary file and a rename, so that a crash leaves
    /// the old key file or the new one, never half of one.
    func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(self)
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ReplicaError.damagedKeyFile("cannot write '\(temporary)': \(String(cString: strerror(errno)))") }
        let written = data.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == data.count, synced == 0, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw ReplicaError.damagedKeyFile("cannot write the key file '\(path)': \(String(cString: strerror(errno)))")
        }
    }

    /// Overwrites the key file where it lies with random bytes and flushes it, then removes it. The
    /// overwrite needs only the file to be writable, not its folder: the data is unreadable even when
    /// nothing can be deleted. Returns whether the key is gone.
    @discardableResult
    static func destroy(at path: String, remove: (String) throws -> Void) -> Bool {
        var destroyed = false
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        if fd >= 0 {
            var size = stat()
            if fstat(fd, &size) == 0 {
                let noise = (0..<max(Int(size.st_size), 512)).map { _ in UInt8.random(in: 0...255) }
                destroyed = noise.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) } == noise.count && fsync(fd) == 0
            }
            close(fd)
        }
        if (try? remove(path)) != nil { destroyed = true }
        return destroyed || !FileManager.default.fileExists(atPath: path)
    }
}
