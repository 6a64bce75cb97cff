import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelTesting
import Testing

/// AVG erasure and the audit trail (issue 5): a resident's data is answered for, then erased from
/// the server and from every replica, down to the bytes of the files.
@Suite struct ErasureTests {
    static let deVries = AccessTests.deVries

    /// Files of a directory and of replicas, with their SQLite companions.
    func files(directory: String, replicas: [Replica]) throws -> [String] {
        let stored = try FileManager.default.contentsOfDirectory(atPath: directory).map { directory + "/" + $0 }
        let local = replicas.flatMap { [$0.path, $0.path + "-wal", $0.path + "-shm"] }
        return (stored + local).filter { FileManager.default.fileExists(atPath: $0) }
    }

    func filesContaining(_ text: String, in paths: [String]) throws -> [String] {
        let needle = Data(text.utf8)
        return try paths.filter { try Data(contentsOf: URL(fileURLWithPath: $0)).range(of: needle) != nil }
    }

    @Test func anErasedResidentLeavesNoTraceInAnyFileAndTheAuditSaysWhoHadThem() async throws {
        let server = try await AccessTests.start()
        let clock = TestClock()
        let fatima = try server.replica("laptop fatima", clock: clock, user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        let office = try server.replica("office", clock: clock)
        let stale = try server.replica("old laptop", clock: clock, user: "fatima")
        for replica in [fatima, office, stale] { try await replica.sync() }

        // History and a conflict that hold her name, as in real life.
        try await fatima.execute("UPDATE residents SET first_name = 'Wilhelmina Johanna', last_name = 'De Vries-Bakker' WHERE id = ?",
                           [.text(Self.deVries)])
        try await office.execute("UPDATE residents SET last_name = 'De Vries (weduwe)' WHERE id = ?", [.text(Self.deVries)])
        try await fatima.sync()
        let officeSync = try await office.sync()
        #expect(officeSync.pushed.conflicts == 1)
        try await fatima.sync()
        #expect(try !fatima.conflicts().isEmpty)

        // Who changed and who received her data.
        let audit = try server.store.audit.resident( Self.deVries)
        #expect(audit.rows.count == 10)
        #expect(audit.changes.contains { $0.user == "fatima" && $0.device == "laptop fatima" && $0.table == "residents" && $0.cells == 2 })
        #expect(audit.changes.contains { $0.user == "office (ktd admin)" && $0.table == "cases" }, "the demo data came from the office")
        let receivers = Set(audit.receipts.map(\.device))
        #expect(receivers == ["laptop fatima", "office", "old laptop"])

        // The old laptop, offline, still writes about her.
        try await stale.execute("UPDATE residents SET phone = '072-5551234', first_name = 'Mien' WHERE id = ?", [.text(Self.deVries)])

        let report = try server.store.erasure.eraseResident(Self.deVries, actor: "test")
        #expect(report.rows == 10 && report.historyEntries > 0 && report.conflicts == 1)
        let erased = try #require(try server.store.erasure.find(resident: Self.deVries))
        #expect(erased.actor == "test" && erased.action == "erase.resident")
        #expect(throws: AdminError.self) { try server.store.audit.resident( Self.deVries) }

        let fatimasSync = try await fatima.sync()
        #expect(fatimasSync.pulled.rowsPurged == 10)
        try await office.sync()
        let staleSync = try await stale.sync()
        #expect(staleSync.pushed.rejected == 2, "writes to an erased row are refused…")
        #expect(try stale.outbox().isEmpty, "…and purged from the device with the row")
        #expect(try stale.rowCount("residents") == 1, "Sanne remains")

        let everything = try files(directory: server.directory, replicas: [fatima, office, stale])
        #expect(everything.count >= 4)
        for name in ["Wilhelmina", "De Vries", "Els de Vries"] {
            let found = try filesContaining(name, in: everything)
            #expect(found.isEmpty, "\(name) found in \(found)")
        }
        // The rest is intact and the stores are sound.
        #expect(try office.rowCount("cases") == 4)
        for replica in [fatima, office] {
            #expect(try await replica.query("PRAGMA integrity_check").rows.first?.first == .text("ok"))
        }
        await server.stop()
    }
}
