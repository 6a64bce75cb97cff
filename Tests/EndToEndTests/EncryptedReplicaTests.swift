import Crypto
import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelProcesses
@testable import KeukentafelServer
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
        #expect(FileManager.default.fileExists(atPath: path + ".key"))
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

        // A key file whose scrypt settings were changed to take a machine's memory is refused before deriving.
        let keyFile = URL(fileURLWithPath: path + ".key")
        var settings = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: keyFile)) as? [String: Any])
        settings["cost"] = 1 << 30
        try JSONSerialization.data(withJSONObject: settings).write(to: keyFile)
        #expect { try Replica(path: path, passphrase: "een nieuwe zin voor de laptop") } throws: {
            ($0 as? ReplicaError)?.code == "damaged_key_file" && "\($0)".contains("out of bounds")
        }
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

/// The encrypted replica through `kt`, as a consultant's laptop uses it.
@Suite struct EncryptedReplicaCommandLineTests {
    static let environment = ProcessInfo.processInfo.environment.merging(["KT_PASSPHRASE": EncryptedReplicaTests.passphrase]) { $1 }

    static func kt(_ arguments: [String], environment: [String: String] = environment) throws -> Spawn.Result {
        try Spawn.run(CommandLineTests.binDirectory.appendingPathComponent("kt").path, arguments, environment: environment)
    }

    @Test func killedMidDownloadAnEncryptedReplicaRecoversItsLogAndFinishes() async throws {
        let server = try await TestServer.start()
        let population = SyntheticPopulation(municipalities: 2, teams: 3, cases: 700, seed: 5)
        let cells = try population.generate(node: NodeID(rawValue: 42)!, milliseconds: 1_763_000_000_000) { batch in
            _ = try server.store.push(batch, device: "demo")
        }
        #expect(cells > 4 * SyncEngine.defaultPageSize, "several pages to download")
        let proxy = try FaultProxy(upstreamPort: server.port)
        defer { proxy.stop() }
        let db = try temporaryDirectory("killed") + "/laptop.sqlite"
        let token = try server.token("laptop")
        let made = try await onThread { try Self.kt(["init", "--db", db, "--server", "http://127.0.0.1:\(proxy.port)", "--token", token]) }
        #expect(made.status == 0, "\(made.error)")
        #expect(Replica.isEncrypted(path: db))

        // The third request of `kt sync` stalls (pages before it are applied and committed to the
        // encrypted WAL), and the process is killed -9 while it waits.
        proxy.fault(.stall, afterPassing: 3)
        let before = proxy.requests
        let sync = try Spawn.start(CommandLineTests.binDirectory.appendingPathComponent("kt").path, ["sync", "--db", db],
                                   environment: Self.environment)
        try await waitUntil("the fourth request reached the proxy") { proxy.requests >= before + 4 }
        kill(sync.processIdentifier, SIGKILL)
        sync.waitUntilExit()
        #expect(sync.terminationStatus == 128 + SIGKILL)
        proxy.fault = .none
        #expect(FileManager.default.fileExists(atPath: db + "-wal"))

        // Opened again, SQLite recovers the log from its encrypted frames: what was committed is there, whole.
        let reopened = try Replica(path: db, passphrase: EncryptedReplicaTests.passphrase)
        let partial = try reopened.totalCellCount()
        #expect(partial > 0 && partial < cells, "\(partial) of \(cells) cells before the kill")
        #expect(try reopened.locked { try reopened.connection.query("PRAGMA integrity_check") } == [[.text("ok")]])

        // And `kt sync` finishes the download.
        let finished = try await onThread { try Self.kt(["sync", "--db", db]) }
        #expect(finished.status == 0, "\(finished.error)")
        #expect(try reopened.totalCellCount() == cells)
        #expect(try reopened.rowCount("cases") == 700)
        // Texts of 12 bytes or more: a short name ("Bos") turns up by chance in megabytes of ciphertext.
        let texts = try reopened.locked {
            try reopened.connection.query("SELECT question FROM cases WHERE length(question) >= 12 LIMIT 3")
                + reopened.connection.query("SELECT last_name || ', ' || first_name FROM residents WHERE length(last_name || first_name) >= 10 LIMIT 3")
        }.compactMap { row -> String? in if case .text(let text)? = row.first { return text } else { return nil } }
        #expect(texts.count >= 4)
        let onDisk = try EncryptedReplicaTests.bytesOnDisk(db)
        for text in texts + [token] { #expect(!EncryptedReplicaTests.contains(onDisk, text), "'\(text)' is readable on disk") }
        await server.stop()
    }

    @Test func ktUpgradeWorksOnAnEncryptedReplica() async throws {
        let v1 = try shippedDataModel()
        let v2 = DataModelTests.version2(of: v1)
        let server = try await TestServer.start(dataModel: v2)
        let db = try temporaryDirectory("upgrade") + "/old.sqlite"
        let old = try Replica.create(path: db, dataModel: v1, serverURL: server.url, token: try server.token("old laptop"),
                                     encryption: .passphrase(EncryptedReplicaTests.passphrase))
        let (_, caseID) = try seedCase(on: old, name: EncryptedReplicaTests.name)
        try await old.sync()

        let upgraded = try await onThread { try Self.kt(["upgrade", "--db", db]) }
        #expect(upgraded.status == 0, "\(upgraded.output) \(upgraded.error)")
        let reopened = try Replica(path: db, passphrase: EncryptedReplicaTests.passphrase)
        #expect(reopened.dataModel.version == v2.version)
        try await reopened.execute("UPDATE cases SET language = 'Pools' WHERE id = ?", [.text(caseID)])
        #expect(try await reopened.sync().pushed.applied == 1)
        #expect(try server.store.inspection.cell(table: "cases", row: caseID, column: "language")?.value == .text("Pools"))
        #expect(!EncryptedReplicaTests.contains(try EncryptedReplicaTests.bytesOnDisk(db), EncryptedReplicaTests.name))
        await server.stop()
    }

    @Test func ktRefusesAWrongOrMissingPassphraseAndChangesIt() async throws {
        let server = try await TestServer.start()
        let db = try temporaryDirectory("kt-passphrase") + "/laptop.sqlite"
        let token = try server.token("laptop")
        let plainEnvironment = ProcessInfo.processInfo.environment.filter { $0.key != "KT_PASSPHRASE" }

        // No passphrase and no terminal: kt init says how to give one, and makes nothing.
        let refused = try await onThread { try Self.kt(["init", "--db", db, "--server", server.url, "--token", token], environment: plainEnvironment) }
        #expect(refused.status != 0 && refused.error.contains("KT_PASSPHRASE") && refused.error.contains("--passphrase-fd"), "\(refused.error)")
        #expect(!FileManager.default.fileExists(atPath: db) && !FileManager.default.fileExists(atPath: db + ".key"))
        let weak = try await onThread {
            try Self.kt(["init", "--db", db, "--server", server.url, "--token", token], environment: plainEnvironment.merging(["KT_PASSPHRASE": "kort"]) { $1 })
        }
        #expect(weak.status != 0 && weak.error.contains("at least 8 characters"), "\(weak.error)")
        #expect(!FileManager.default.fileExists(atPath: db) && !FileManager.default.fileExists(atPath: db + ".key"))

        let both = try await onThread { try Self.kt(["init", "--db", db, "--server", server.url, "--token", token, "--encrypt", "--plain"]) }
        #expect(both.status == 64 && both.error.contains("contradict"), "\(both.error)")
        let made = try await onThread { try Self.kt(["init", "--db", db, "--server", server.url, "--token", token, "--encrypt"]) }
        #expect(made.status == 0 && made.output.contains("encrypted; key in"), "\(made.output) \(made.error)")
        let status = try await onThread { try Self.kt(["status", "--db", db]) }
        #expect(status.output.contains("encrypted)"), "\(status.output)")

        let wrong = try await onThread { try Self.kt(["status", "--db", db], environment: plainEnvironment.merging(["KT_PASSPHRASE": "niet de goede zin"]) { $1 }) }
        #expect(wrong.status != 0 && wrong.error.contains("wrong passphrase"), "\(wrong.error)")
        let missing = try await onThread { try Self.kt(["sync", "--db", db], environment: plainEnvironment) }
        #expect(missing.status != 0 && missing.error.contains("needs a passphrase"), "\(missing.error)")

        // `kt passphrase`: the old one from the environment, the new one on a file descriptor.
        let newFile = db + ".new-passphrase"
        try "een nieuwe zin voor de laptop\n".write(toFile: newFile, atomically: true, encoding: .utf8)
        let changed = try await onThread {
            try Spawn.run("/bin/sh", ["-c", "exec \"$0\" passphrase --db \"$1\" --new-passphrase-fd 3 3<\"$2\"",
                                      CommandLineTests.binDirectory.appendingPathComponent("kt").path, db, newFile], environment: Self.environment)
        }
        #expect(changed.status == 0 && changed.output.contains("passphrase of"), "\(changed.output) \(changed.error)")
        let withOld = try await onThread { try Self.kt(["status", "--db", db]) }
        #expect(withOld.status != 0)
        let withNew = try await onThread {
            try Self.kt(["status", "--db", db], environment: plainEnvironment.merging(["KT_PASSPHRASE": "een nieuwe zin voor de laptop"]) { $1 })
        }
        #expect(withNew.status == 0, "\(withNew.error)")
        await server.stop()
    }
}

extension Replica {
    /// Cells this replica holds a version of.
    func totalCellCount() throws -> Int {
        guard case .integer(let n)? = try locked({ try connection.scalar("SELECT coalesce(sum(kt_versions_count(versions)), 0) FROM _kt_versions") }) else { return 0 }
        return Int(n)
    }
}

extension EncryptedReplicaTests {
    @Test func aRemoteWipeLeavesNothingReadableEvenWhenNoFileCanBeDeleted() async throws {
        let server = try await TestServer.start()
        let office = try server.replica("office")
        _ = try seedCase(on: office, name: Self.name)
        try await office.sync()
        let laptop = try server.replica("laptop sanne", encryption: .passphrase(Self.passphrase))
        try await laptop.sync()
        #expect(try laptop.rowCount("residents") == 1)

        // The laptop is reported lost; on it, no file can be deleted (as on a read-only mount).
        _ = try server.store.accounts.markDeviceLost("laptop sanne", actor: "test")
        laptop.removeFile = { path in throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path]) }
        let failure = await #expect(throws: SyncError.self) { try await laptop.sync() }
        let message = "\(failure.map { "\($0)" } ?? "")"
        #expect(message.contains("could not be fully deleted") && message.contains("its key was destroyed first"), "\(message)")

        // The files are all still there, and nothing in them can be read: the key file is noise now.
        let path = laptop.path
        for file in [path, path + ".key"] { #expect(FileManager.default.fileExists(atPath: file)) }
        #expect(!Self.contains(try Self.bytesOnDisk(path), Self.name))
        #expect(!Self.contains(try Data(contentsOf: URL(fileURLWithPath: path + ".key")), "keukentafel-replica-key"))
        #expect { try Replica(path: path, passphrase: Self.passphrase) } throws: { ($0 as? ReplicaError)?.code == "damaged_key_file" }
        await server.stop()
    }

    @Test func aRemoteWipeDeletesAnEncryptedReplicasFilesAndKey() async throws {
        let server = try await TestServer.start()
        let laptop = try server.replica("laptop sanne", encryption: .passphrase(Self.passphrase))
        _ = try seedCase(on: laptop, name: Self.name)
        try await laptop.sync()
        _ = try server.store.accounts.markDeviceLost("laptop sanne", actor: "test")
        await #expect(throws: SyncError.self) { try await laptop.sync() }
        for suffix in ["", "-wal", "-shm", ".key"] { #expect(!FileManager.default.fileExists(atPath: laptop.path + suffix), "\(suffix)") }
        await server.stop()
    }
}
