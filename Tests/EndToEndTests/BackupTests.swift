import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
@testable import KeukentafelServer
import KeukentafelTesting
import KeukentafelSQLite
import Testing

@Suite struct BackupTests {
    @Test func aBackupTakenUnderLoadIsConsistent() async throws {
        let server = try await TestServer.start()
        let laptop = try server.replica("laptop")
        for i in 0..<200 { _ = try seedCase(on: laptop, name: "Inwoner \(i)") }
        try await laptop.sync()

        // Pushes keep committing on another thread while the backup runs.
        let writer = try server.replica("office")
        let engine = try SyncEngine(replica: writer)
        let load = Task.detached {
            for round in 0..<20 {
                _ = try seedCase(on: writer, name: "Later \(round)")
                _ = try await onThread { try engine.sync() }
            }
        }
        let backupPath = server.directory + "/backup.sqlite"
        var steps = 0
        try await onThread { try server.store.backups.backup(to: backupPath) { _, _ in } }
        try server.store.backups.backup(to: backupPath + "2") { _, _ in steps += 1 }
        try await load.value
        #expect(steps > 0)

        for path in [backupPath, backupPath + "2"] {
            let copy = try SQLiteConnection(path: path, readOnly: true)
            #expect(try copy.query("PRAGMA integrity_check").first?.first == .text("ok"))
            // Consistent: every current cell is an accepted change in the same snapshot, and the sequence covers them.
            var accepted = Set<String>()
            let names = try StoreLayoutTests.columnNames(copy)
            let history = try copy.cachedStatement("SELECT tbl, row_id, changes FROM history")
            while try history.step() {
                let table = history.value(0).description, row = history.value(1).description
                for change in try history.withBytes(2, { try HistoryCoding.decode($0, columns: names) }) ?? [] {
                    accepted.insert([table, row, change.column, String(Int64(bitPattern: change.version.hlc)),
                                     String(Int64(bitPattern: change.version.node.rawValue))].joined(separator: "|"))
                }
            }
            history.reset()
            var current: [String] = []
            let records = try copy.cachedStatement("SELECT tbl, row_id, cells FROM records")
            while try records.step() {
                let table = records.value(0).description, row = records.value(1).description
                try records.withBytes(2) { bytes in
                    try RowCoding.forEachCell(in: bytes, columns: names, devices: .fixed(try DeviceNumbers.read(copy))) { column, cell in
                        current.append([table, row, column, String(Int64(bitPattern: cell.version.hlc)),
                                        String(Int64(bitPattern: cell.version.node.rawValue))].joined(separator: "|"))
                    }
                }
            }
            records.reset()
            #expect(current.count >= 200 * 6, "each seeded case: a resident of two cells, a case of four")
            #expect(current.filter { !accepted.contains($0) } == [])
            let beyond = try copy.query("SELECT count(*) FROM records WHERE seq > (SELECT value FROM meta WHERE key = 'seq')").first?.first
            #expect(beyond == .integer(0))
        }
        // A backup restored into a data directory serves: a fresh replica pulls it.
        let restored = try temporaryDirectory("restored")
        try FileManager.default.copyItem(atPath: backupPath, toPath: restored + "/" + ServerStore.fileName)
        let store = try ServerStore(directory: restored, dataModel: server.store.dataModel)
        #expect(try store.inspection.counts()["cells"] ?? 0 >= 200 * 6, "each seeded case: a resident of two cells, a case of four")

        let ready = try await onThread { try CurlTransport(baseURL: server.url, token: "").send(method: "GET", path: "/readyz", query: [], body: nil) }
        #expect(ready.status == 200)
        await server.stop()
    }

    /// Issue 21, item 4 (decision 0027): a backup is private from its first byte, never replaced by
    /// accident, and with a key unreadable to anyone without it; a damaged one restores nothing.
    @Test func anEncryptedBackupHoldsNoReadableDataAndRestoresOnlyWithItsKey() async throws {
        let server = try await TestServer.start()
        _ = try server.store.demo.load()
        let work = try temporaryDirectory("backup-key")
        let keyFile = work + "/backup.key", otherKeyFile = work + "/other.key"
        try Data((0..<32).map { _ in UInt8.random(in: 0...255) }).write(to: URL(fileURLWithPath: keyFile))
        try Data((0..<32).map { _ in UInt8.random(in: 0...255) }.map { String(format: "%02x", $0) }.joined().utf8).write(to: URL(fileURLWithPath: otherKeyFile))
        let key = try BackupKey(file: keyFile), otherKey = try BackupKey(file: otherKeyFile)
        #expect(throws: AdminError.self) { try BackupKey(file: work + "/missing.key") }
        try Data("short".utf8).write(to: URL(fileURLWithPath: work + "/bad.key"))
        #expect(throws: AdminError.self) { try BackupKey(file: work + "/bad.key") }

        let plain = work + "/plain.sqlite", sealed = work + "/sealed.ktbackup"
        try await onThread { try server.store.backups.backup(to: plain) }
        try await onThread { try server.store.backups.backup(to: sealed, key: key) }
        for file in [plain, sealed] {
            let mode = try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int
            #expect(mode == 0o600, "\(file) has mode \(String(mode ?? 0, radix: 8))")
        }
        let sealedBytes = try Data(contentsOf: URL(fileURLWithPath: sealed))
        #expect(try Data(contentsOf: URL(fileURLWithPath: plain)).range(of: Data("Wilhelmina".utf8)) != nil, "the plain backup does hold her name")
        #expect(sealedBytes.range(of: Data("Wilhelmina".utf8)) == nil && sealedBytes.range(of: Data("SQLite format".utf8)) == nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: server.directory).allSatisfy { !$0.hasPrefix(".backup-") },
                "no plain copy left behind")

        // Never replaced by accident.
        #expect(throws: AdminError.self) { try server.store.backups.backup(to: sealed, key: key) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: sealed)) == sealedBytes)

        // A change after the backup, then the restore puts it back, with the right key only.
        let office = try server.replica("office")
        try await office.sync()
        try await office.execute("UPDATE cases SET status = 'plan' WHERE id = ?", [.text(AccessTests.sanneCase)])
        try await office.sync()
        for (file, wrong, why) in [(sealed, nil as BackupKey?, "encrypted backup"), (sealed, otherKey, "does not open")] {
            do {
                _ = try server.store.backups.restore(from: file, key: wrong, actor: "test")
                Issue.record("restored with \(wrong == nil ? "no key" : "another key")")
            } catch let error as AdminError {
                #expect("\(error)".contains(why), "\(error)")
            }
        }
        var cut = sealedBytes
        cut.removeLast(1_000)
        try cut.write(to: URL(fileURLWithPath: work + "/cut.ktbackup"))
        var flipped = sealedBytes
        flipped[flipped.count / 2] ^= 0x01
        try flipped.write(to: URL(fileURLWithPath: work + "/flipped.ktbackup"))
        for damaged in ["cut", "flipped"] {
            #expect(throws: AdminError.self) { try server.store.backups.restore(from: work + "/\(damaged).ktbackup", key: key, actor: "test") }
        }
        #expect(try server.store.inspection.cell(table: "cases", row: AccessTests.sanneCase, column: "status")?.value == .text("plan"),
                "nothing was restored from a damaged file")
        _ = try server.store.backups.restore(from: sealed, key: key, actor: "test")
        #expect(try server.store.inspection.cell(table: "cases", row: AccessTests.sanneCase, column: "status")?.value != .text("plan"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: server.directory).allSatisfy { !$0.hasPrefix(".restore-") })
        await server.stop()
    }

    /// A restore to an older state while the server runs: devices that synced past it recover without
    /// losing their pending writes, and send again what they had delivered after the backup.
    @Test func afterARestoreToAnOlderStateDevicesRecoverTheirOwnWrites() async throws {
        let server = try await TestServer.start()
        _ = try server.store.demo.load()
        let clock = TestClock()
        let laptop = try server.replica("laptop fatima", clock: clock, user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        let office = try server.replica("office", clock: clock)
        for replica in [laptop, office] { try await replica.sync() }
        let backup = server.directory + "/before.sqlite"
        try await onThread { try server.store.backups.backup(to: backup) }

        // After the backup: delivered writes of both devices, then a restore loses them on the server.
        let deliveredNote = newID()
        try await laptop.execute("INSERT INTO notes (id, case_id, body) VALUES (?, ?, 'Na de back-up geschreven.')",
                           [.text(deliveredNote), .text(AccessTests.deVriesCase)])
        try await laptop.execute("UPDATE cases SET contact_person = 'Fatima' WHERE id = ?", [.text(AccessTests.deVriesCase)])
        try await office.execute("UPDATE cases SET status = 'plan' WHERE id = ?", [.text(AccessTests.sanneCase)])
        for replica in [laptop, office, laptop] { try await replica.sync() }
        #expect(try laptop.outbox().isEmpty && office.outbox().isEmpty)

        let restored = try server.store.backups.restore(from: backup, actor: "test")
        #expect(try server.store.inspection.cell(table: "notes", row: deliveredNote, column: "body") == nil, "the restore lost it")
        #expect(try server.store.audit.entries().first?.action == "restore")

        // Written after the restore, not yet sent.
        let pendingNote = newID()
        try await laptop.execute("INSERT INTO notes (id, case_id, body) VALUES (?, ?, 'Nog niet verstuurd.')",
                           [.text(pendingNote), .text(AccessTests.deVriesCase)])
        let recovery = try await laptop.sync()
        #expect(recovery.pulled.changesRequeued == 3, "the note's two cells and the contact person")
        #expect(try laptop.outbox().isEmpty)
        try await office.sync()
        try await laptop.sync()

        for (table, row, column, value) in [("notes", deliveredNote, "body", CellValue.text("Na de back-up geschreven.")),
                                            ("notes", pendingNote, "body", .text("Nog niet verstuurd.")),
                                            ("cases", AccessTests.deVriesCase, "contact_person", .text("Fatima")),
                                            ("cases", AccessTests.sanneCase, "status", .text("plan"))] {
            #expect(try server.store.inspection.cell(table: table, row: row, column: column)?.value == value, "\(table).\(column) on the server")
            #expect(try laptop.value(table, row, column) == value, "\(table).\(column) on the laptop")
            #expect(try office.value(table, row, column) == value, "\(table).\(column) at the office")
        }
        #expect(restored.epoch != "")
        // Both replicas hold the same rows of the team they share.
        for table in ["cases", "notes", "visits"] {
            let shared = "SELECT * FROM \(table) WHERE id IN (SELECT id FROM \(table)) ORDER BY id"
            let onLaptop = try await laptop.query(shared).rows
            let atOffice = try await office.query(shared).rows.filter { row in onLaptop.contains { $0.first == row.first } }
            #expect(onLaptop == atOffice, "\(table)")
        }
        await server.stop()
    }

    /// A store file put back by hand (no `ktd admin restore`, so no new epoch): the first device whose
    /// cursor is beyond the store's newest change makes the server rotate the epoch, and it recovers.
    @Test func aStorePutBackByHandIsNoticedByTheDeviceThatWasAhead() async throws {
        let server = try await TestServer.start()
        let laptop = try server.replica("laptop")
        _ = try seedCase(on: laptop)
        try await laptop.sync()
        let backup = server.directory + "/by-hand.sqlite"
        try await onThread { try server.store.backups.backup(to: backup) }
        let (_, later) = try seedCase(on: laptop, name: "Na de back-up")
        try await laptop.sync()
        // Put the old file back underneath the running store, keeping its epoch.
        let old = try SQLiteConnection(path: backup, readOnly: true)
        let live = try SQLiteConnection(path: server.directory + "/" + ServerStore.fileName)
        try old.copy(into: live)
        #expect(try server.store.inspection.cell(table: "cases", row: later, column: "team") == nil)

        let recovery = try await laptop.sync()
        #expect(recovery.pulled.changesRequeued > 0)
        #expect(try server.store.inspection.cell(table: "cases", row: later, column: "team")?.value == .text("castricum-noord"))
        #expect(try server.store.audit.entries().contains { $0.action == "epoch.rotate" })
        await server.stop()
    }
}
