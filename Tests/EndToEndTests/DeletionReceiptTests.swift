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

extension DeletionReceiptTests {
    @Test func aLostDeviceConfirmsItsWipeAndHoldsNothingAfterwards() async throws {
        let server = try await AccessTests.start()
        let fatima = try server.replica("laptop fatima", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"],
                                        encryption: .passphrase("zonnebloem op de keukentafel"))
        let away = try server.replica("laptop away", user: "fatima")
        for replica in [fatima, away] { try await replica.sync() }
        #expect(try server.store.audit.resident(AccessTests.deVries).holders.contains { $0.device == "laptop fatima" })

        // Reported lost: until it connects, it still holds the data, and the device list says not yet wiped.
        _ = try server.store.accounts.markDeviceLost("laptop fatima", actor: "test")
        _ = try server.store.accounts.markDeviceLost("laptop away", actor: "test")
        #expect(try server.store.audit.resident(AccessTests.deVries).holders.contains { $0.device == "laptop fatima" })
        #expect(try server.store.accounts.devices().first { $0.name == "laptop fatima" }?.wipedAt == nil)

        // It connects, wipes itself and says so: from then on it holds nothing, and the audit trail has the receipt.
        let failure = await #expect(throws: SyncError.self) { try await fatima.sync() }
        #expect("\(failure.map { "\($0)" } ?? "")".contains("the office was told"))
        let holders = try server.store.audit.resident(AccessTests.deVries).holders
        #expect(!holders.contains { $0.device == "laptop fatima" }, "\(holders)")
        #expect(holders.contains { $0.device == "laptop away" }, "the other lost laptop has not connected: it still holds her")
        #expect(try server.store.accounts.devices().first { $0.name == "laptop fatima" }?.wipedAt != nil)
        let entry = try #require(try server.store.audit.entries().first { $0.action == "device.wiped" })
        #expect(entry.subject == "laptop fatima" && entry.detail == "files deleted; key destroyed", "\(entry)")
        #expect(try server.store.deletionReceipts.unconfirmed().allSatisfy { $0.device != "laptop fatima" })

        // The receipt is the only request a lost device may make, and only a lost device may make it.
        let officeToken = try server.token("office")
        let body = try JSONEncoder().encode(WipeReceipt(keyDestroyed: nil, filesDeleted: true))
        let refused = try await onThread {
            try CurlTransport(baseURL: server.url, token: officeToken).send(method: "POST", path: "/v1/wiped", query: [], body: body)
        }
        #expect(refused.status == 403 && String(decoding: refused.body, as: UTF8.self).contains("not_permitted"))
        let stillServed = try await onThread {
            try CurlTransport(baseURL: server.url, token: officeToken).send(method: "GET", path: "/v1/hello", query: [], body: nil)
        }
        #expect(stillServed.status == 200, "the office device itself is served as before")
        await server.stop()
    }
}
