import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
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
            let orphans = try copy.query("""
                SELECT count(*) FROM records r, json_each(r.cells) c WHERE c.key > 0 AND NOT EXISTS
                  (SELECT 1 FROM history h, json_each(h.changes) x WHERE h.tbl = r.tbl AND h.row_id = r.row_id
                     AND x.value ->> 1 = c.value ->> 0 AND x.value ->> 3 = c.value ->> 2 AND x.value ->> 4 = c.value ->> 3)
                """).first?.first
            #expect(orphans == .integer(0))
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
