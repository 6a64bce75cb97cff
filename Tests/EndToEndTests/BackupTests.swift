import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
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
        try await onThread { try server.store.backup(to: backupPath) { _, _ in } }
        try server.store.backup(to: backupPath + "2") { _, _ in steps += 1 }
        try await load.value
        #expect(steps > 0)

        for path in [backupPath, backupPath + "2"] {
            let copy = try SQLiteConnection(path: path, readOnly: true)
            #expect(try copy.query("PRAGMA integrity_check").first?.first == .text("ok"))
            // Consistent: every current cell is an accepted change in the same snapshot, and the sequence covers them.
            let orphans = try copy.query("""
                SELECT count(*) FROM cells c WHERE NOT EXISTS
                  (SELECT 1 FROM changes h WHERE h.tbl = c.tbl AND h.row_id = c.row_id AND h.col = c.col AND h.hlc = c.hlc AND h.node = c.node)
                """).first?.first
            #expect(orphans == .integer(0))
            let beyond = try copy.query("SELECT count(*) FROM cells WHERE seq > (SELECT value FROM meta WHERE key = 'seq')").first?.first
            #expect(beyond == .integer(0))
        }
        // A backup restored into a data directory serves: a fresh replica pulls it.
        let restored = try temporaryDirectory("restored")
        try FileManager.default.copyItem(atPath: backupPath, toPath: restored + "/" + ServerStore.fileName)
        let store = try ServerStore(directory: restored, dataModel: server.store.dataModel)
        #expect(try store.counts()["cells"] ?? 0 >= 200 * 30)

        let ready = try await onThread { try CurlTransport(baseURL: server.url, token: "").send(method: "GET", path: "/readyz", query: [], body: nil) }
        #expect(ready.status == 200)
        await server.stop()
    }
}
