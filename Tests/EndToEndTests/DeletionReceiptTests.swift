import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
@testable import KeukentafelServer
import KeukentafelTesting
import Testing

/// Deletion receipts (issue 21, item 3; decision 0028): the server knows which devices still hold a
/// resident's data, because a device's cursor shows which evictions and purges it applied.
@Suite struct DeletionReceiptTests {
    @Test func afterACaseMovesTeamTheOldTeamsDeviceConfirmsAndNoLongerHoldsTheResident() async throws {
        let server = try await AccessTests.start()
        let fatima = try server.replica("laptop fatima", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        let office = try server.replica("office")
        for replica in [fatima, office] { try await replica.sync() }
        let before = try server.store.audit.resident(AccessTests.deVries)
        let held = try #require(before.holders.first { $0.device == "laptop fatima" })
        #expect(held.rows > 1 && held.toDelete == 0 && !held.since.isEmpty)
        #expect(before.holders.contains { $0.device == "office" })

        // The case moves to Heiloo; Fatima's laptop has not synced yet: told nothing, it still holds her.
        try await office.execute("UPDATE cases SET team = 'heiloo' WHERE id = ?", [.text(AccessTests.deVriesCase)])
        try await office.sync()
        #expect(try server.store.audit.resident(AccessTests.deVries).holders.contains { $0.device == "laptop fatima" })

        // Its sync applies the eviction, and its cursor says so: it no longer holds her.
        let moved = try await fatima.sync()
        #expect(moved.pulled.rowsEvicted > 0)
        #expect(try fatima.rowCount("residents") == 1, "Sanne stays, De Vries went")
        let after = try server.store.audit.resident(AccessTests.deVries)
        #expect(!after.holders.contains { $0.device == "laptop fatima" }, "\(after.holders)")
        #expect(after.receipts.contains { $0.device == "laptop fatima" }, "that it once received her data stays in the audit")
        #expect(after.holders.contains { $0.device == "office" })
        #expect(try server.store.deletionReceipts.unconfirmed().isEmpty)
        await server.stop()
    }

    @Test func anErasureSaysWhichDevicesHaveYetToConfirmUntilTheySync() async throws {
        let server = try await AccessTests.start()
        let fatima = try server.replica("laptop fatima", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        let office = try server.replica("office")
        let away = try server.replica("laptop on holiday", user: "fatima")
        for replica in [fatima, office, away] { try await replica.sync() }

        let report = try server.store.erasure.eraseResident(AccessTests.deVries, actor: "test")
        #expect(report.devicesToConfirm == ["laptop fatima", "laptop on holiday", "office"])
        let subject = "sha256:" + Erasure.erasedKey(AccessTests.deVries)
        #expect(try server.store.deletionReceipts.unconfirmed().map(\.device).sorted() == ["laptop fatima", "laptop on holiday", "office"])

        try await fatima.sync()
        try await office.sync()
        #expect(try server.store.deletionReceipts.unconfirmedErasure(subject: subject) == ["laptop on holiday"])
        let pending = try #require(try server.store.deletionReceipts.unconfirmed().first)
        #expect(pending.device == "laptop on holiday" && pending.kind == "erased" && pending.rows > 0)
        #expect(try server.store.deletionReceipts.unconfirmed(olderThanDays: 1).isEmpty, "told today, not a day ago")

        try await away.sync()
        #expect(try server.store.deletionReceipts.unconfirmedErasure(subject: subject).isEmpty)
        #expect(try server.store.deletionReceipts.unconfirmed().isEmpty)
        await server.stop()
    }
}
