import Crypto
import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelSQLite
import KeukentafelTesting
import Testing

/// The encrypted replica (issue 21, item 1; decision 0029): every page of the file and of its
/// write-ahead log sealed with AES-256-GCM under a random key, wrapped by the user's passphrase.
@Suite struct EncryptedReplicaTests {
    static let passphrase = "zonnebloem op de keukentafel"
    static let name = "Mevrouw Zonneveld-Kwakernaak"

    /// Every byte of the replica's files on disk (database, WAL, key file).
    static func bytesOnDisk(_ path: String) throws -> Data {
        var all = Data()
        for suffix in ["", "-wal", ".key"] where FileManager.default.fileExists(atPath: path + suffix) {
            all += try Data(contentsOf: URL(fileURLWithPath: path + suffix))
        }
        return all
    }

    static func contains(_ data: Data, _ text: String) -> Bool { data.range(of: Data(text.utf8)) != nil }

    static func digest(_ path: String) throws -> String {
        SHA256.hash(data: try Data(contentsOf: URL(fileURLWithPath: path))).map { String(format: "%02x", $0) }.joined()
    }

    @Test func anEncryptedReplicaHoldsNoSyncedTextAndOpensWithItsPassphraseOnly() async throws {
        let server = try await TestServer.start()
        let office = try server.replica("office")
        _ = try seedCase(on: office, name: Self.name)
        try await office.sync()
        let token = try server.token("laptop sanne")
        let path = try temporaryDirectory("encrypted") + "/laptop.sqlite"
        let laptop = try Replica.connect(path: path, serverURL: server.url, token: token, encryption: .passphrase(Self.passphrase))
        #expect(laptop.isEncrypted && Replica.isEncrypted(path: path))
        try await laptop.sync()
        try await laptop.execute("UPDATE residents SET first_name = 'Geertruida' WHERE last_name = ?", [.text(Self.name)])
        #expect(try await laptop.query("SELECT last_name FROM residents WHERE first_name = 'Geertruida'").rows.first?.first == .text(Self.name))
        #expect(FileManager.default.fileExists(atPath: path + "-wal"), "the write-ahead log is searched too")

        // The search finds the name in a plain replica's files, and nothing in the encrypted one's.
        #expect(Self.contains(try Self.bytesOnDisk(office.path), Self.name))
        let onDisk = try Self.bytesOnDisk(path)
        for text in [Self.name, "Geertruida", token, "castricum-noord", "CREATE TABLE", "SQLite format 3"] {
            #expect(!Self.contains(onDisk, text), "'\(text)' is readable in the encrypted replica's files")
        }
        #expect(try Self.digest(path + ".key") != "", "the key file is there")
        let attributes = try FileManager.default.attributesOfItem(atPath: path + ".key")
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)

        // Opened again: not without the passphrase, not with a wrong one (and that changes no byte).
        let before = try Self.digest(path)
        #expect { try Replica(path: path) } throws: { ($0 as? ReplicaError)?.code == "passphrase_required" }
        #expect { try Replica(path: path, passphrase: "zonnebloem op de keukenstoel") } throws: { ($0 as? ReplicaError)?.code == "wrong_passphrase" }
        #expect(try Self.digest(path) == before)
        let again = try Replica(path: path, passphrase: Self.passphrase)
        #expect(try await again.query("SELECT first_name FROM residents WHERE last_name = ?", [.text(Self.name)]).rows.first?.first == .text("Geertruida"))
        #expect(try again.outboxCounts().pending > 0, "the unsent change is still there")
        try await again.sync()

        // Without its key SQLite sees no database; with another replica's key, every page fails authentication.
        #expect { try SQLiteConnection(path: path).scalar("SELECT count(*) FROM residents") } throws: { ($0 as? SQLiteError)?.isNotADatabase == true }
        #expect { try SQLiteConnection(path: path, cipher: .random()) } throws: { ($0 as? SQLiteError)?.isUnreadablePage == true }
        await server.stop()
    }

    @Test func aChangedPassphraseRewrapsTheKeyAndLeavesTheDataAlone() async throws {
        let server = try await TestServer.start()
        let laptop = try server.replica("laptop", encryption: .passphrase(Self.passphrase))
        _ = try seedCase(on: laptop, name: Self.name)
        try await laptop.sync()
        let path = laptop.path
        let data = try Self.digest(path)
        let key = try Self.digest(path + ".key")

        #expect { try Replica.changePassphrase(path: path, from: "not the passphrase", to: "a new passphrase") } throws: {
            ($0 as? ReplicaError)?.code == "wrong_passphrase"
        }
        #expect { try Replica.changePassphrase(path: path, from: Self.passphrase, to: "short") } throws: { ($0 as? ReplicaError)?.code == "weak_passphrase" }
        #expect(try Self.digest(path + ".key") == key, "a refused change leaves the key file as it was")

        try Replica.changePassphrase(path: path, from: Self.passphrase, to: "een nieuwe zin voor de laptop")
        #expect(try Self.digest(path) == data, "the data is not encrypted again")
        #expect(try Self.digest(path + ".key") != key)
        #expect { try Replica(path: path, passphrase: Self.passphrase) } throws: { ($0 as? ReplicaError)?.code == "wrong_passphrase" }
        let reopened = try Replica(path: path, passphrase: "een nieuwe zin voor de laptop")
        #expect(try reopened.rowCount("residents") == 1)
        await server.stop()
    }

    @Test func aDamagedPageIsAnErrorNeverGarbage() async throws {
        let server = try await TestServer.start()
        let laptop = try server.replica("laptop", encryption: .passphrase(Self.passphrase))
        for index in 0..<200 { _ = try seedCase(on: laptop, name: "Bewoner \(index) " + String(repeating: "x", count: 80)) }
        try laptop.locked { try laptop.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)") }
        let path = laptop.path
        let size = try #require((try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue)
        #expect(size >= 8 * 4096)

        // One bit flipped in the middle of page 5.
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        try handle.seek(toOffset: UInt64(4 * 4096 + 1000))
        let byte = try #require(try handle.read(upToCount: 1)?.first)
        try handle.seek(toOffset: UInt64(4 * 4096 + 1000))
        try handle.write(contentsOf: [byte ^ 0x01])
        try handle.close()

        // Reading every page meets it: an I/O error, not a row with changed text.
        let reopened = try Replica(path: path, passphrase: Self.passphrase)
        #expect { try reopened.locked { try reopened.connection.query("PRAGMA quick_check") } } throws: {
            ($0 as? SQLiteError)?.isUnreadablePage == true
        }
        await server.stop()
    }
}
