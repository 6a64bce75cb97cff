import Foundation
@testable import KeukentafelClient
import KeukentafelProcesses
import KeukentafelProtocol
@testable import KeukentafelServer
import KeukentafelSQLite
import KeukentafelTesting
import Testing

/// Who viewed a resident (issue 21, item 2; decision 0030): views recorded on the device, offline
/// too, in a hash-chained log; sent with the sync, checked and kept append-only by the server, and
/// listed by `ktd admin audit --resident`.
@Suite struct ViewLogTests {
    @Test func aViewRecordedOfflineAppearsInTheAuditAfterTheNextSync() async throws {
        let server = try await AccessTests.start()
        let clock = TestClock()
        let fatima = try server.replica("laptop fatima", clock: clock, user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        try await fatima.sync()

        // At the kitchen table, ten minutes before the laptop is back online.
        clock.setOffset(-10 * 60_000)
        let entry = try fatima.recordView(table: "cases", row: AccessTests.deVriesCase, purpose: "keukentafelgesprek voorbereiden")
        #expect(entry.seq == 1 && entry.previous == ViewLog.start && entry.isIntact(digest: Replica.viewDigest))
        #expect(Replica.viewDigest(Array("keukentafel view log v1".utf8)) == ViewLog.start, "the start hash is what the protocol says")
        clock.setOffset(0)
        try fatima.recordView(table: "residents", row: AccessTests.deVries, purpose: "adres nakijken")
        #expect(try server.store.audit.resident(AccessTests.deVries).views.isEmpty, "nothing reached the server yet")
        #expect(try fatima.unsentViews().count == 2)

        let report = try await fatima.sync()
        #expect(report.viewsSent == 2 && report.viewsFlagged == 0)
        #expect(try fatima.unsentViews().isEmpty)
        let views = try server.store.audit.resident(AccessTests.deVries).views
        #expect(views.map(\.table) == ["cases", "residents"])
        #expect(views.allSatisfy { $0.user == "fatima" && $0.device == "laptop fatima" && $0.finding == "ok" })
        #expect(views.map(\.offline) == [true, false])
        #expect(views.map(\.purpose) == ["keukentafelgesprek voorbereiden", "adres nakijken"])
        #expect(try server.store.audit.resident(AccessTests.joep).views.isEmpty, "another resident's audit shows none of them")

        // A row the device does not hold, a table not in the model, no purpose: refused, nothing recorded.
        #expect(throws: ReplicaError.self) { try fatima.recordView(table: "cases", row: AccessTests.joepCase, purpose: "nieuwsgierig") }
        #expect(throws: ReplicaError.self) { try fatima.recordView(table: "casez", row: AccessTests.deVriesCase, purpose: "p") }
        #expect { try fatima.recordView(table: "cases", row: AccessTests.deVriesCase, purpose: "  ") } throws: {
            ($0 as? ReplicaError)?.code == "invalid_argument"
        }
        #expect(try fatima.unsentViews().isEmpty)
        await server.stop()
    }

    @Test(arguments: [StoreDialect.sqlite, .postgresql])
    func anEditedOrRemovedEntryIsFlaggedAndStoredAppendOnly(dialect: StoreDialect) async throws {
        let server = try await TestServer.start(store: dialect)
        _ = try server.store.demo.load()
        let laptop = try server.replica("laptop")
        try await laptop.sync()
        for purpose in ["eerste", "tweede", "derde"] {
            try laptop.recordView(table: "cases", row: AccessTests.deVriesCase, purpose: purpose)
        }
        // Someone with the file changes the second entry's purpose (taking off the trigger that stops it).
        let file = try SQLiteConnection(path: laptop.path)
        try file.execute("DROP TRIGGER _kt_views_append_only; UPDATE _kt_views SET purpose = 'onschuldig' WHERE seq = 2")
        let first = try await laptop.sync()
        #expect(first.viewsSent == 3 && first.viewsFlagged == 1)

        // …and takes out an entry not yet sent.
        for purpose in ["vierde", "vijfde"] { try laptop.recordView(table: "cases", row: AccessTests.deVriesCase, purpose: purpose) }
        try file.execute("DELETE FROM _kt_views WHERE seq = 4")
        let second = try await laptop.sync()
        #expect(second.viewsSent == 1 && second.viewsFlagged == 1)

        let views = try server.store.audit.resident(AccessTests.deVries).views
        #expect(views.map(\.purpose) == ["eerste", "onschuldig", "derde", "vijfde"])
        #expect(views.map(\.finding) == ["ok", "altered", "ok", "gap"])
        let flagged = try server.store.audit.entries().filter { $0.action == "views.flagged" }
        #expect(flagged.count == 2 && flagged.allSatisfy { $0.subject == "laptop" }, "\(flagged)")
        #expect(flagged.contains { $0.detail == "entry 2: altered" } && flagged.contains { $0.detail == "entry 5: gap" })

        // The same entries sent again (a retry after a lost answer) are not stored twice.
        let device = try #require(try server.store.accounts.devices().first { $0.name == "laptop" }).id
        let resent = try server.store.views.receive([ViewLog.Entry(seq: 5, at: 1, table: "cases", row: AccessTests.deVriesCase,
                                                                    purpose: "vijfde", previous: "x", digest: Replica.viewDigest)], device: device)
        #expect(resent.flagged == [ViewReceipt.Flag(seq: 5, finding: .altered)], "same seq, other content: flagged")
        #expect(try server.store.audit.resident(AccessTests.deVries).views.count == 5)

        // The server's copy is append-only, as the audit trail is (one trigger function on PostgreSQL, its message per table).
        for (statement, message) in [("UPDATE views SET purpose = 'weg' WHERE seq = 1", "the view log is append-only"),
                                     ("DELETE FROM views", "the view log is append-only"),
                                     ("UPDATE audit SET actor = 'iemand'", "the audit trail is append-only"),
                                     ("DELETE FROM audit", "the audit trail is append-only")] {
            #expect { try server.store.writer.withLock { try $0.run(statement, []) } } throws: { "\($0)".contains(message) }
        }
        #expect(try server.store.audit.resident(AccessTests.deVries).views.count == 5)
        await server.stop()
    }

    @Test func aRetryOfStoredEntriesIsNotStoredTwice() async throws {
        let server = try await AccessTests.start()
        let laptop = try server.replica("laptop")
        try await laptop.sync()
        try laptop.recordView(table: "cases", row: AccessTests.deVriesCase, purpose: "eerste")
        let entries = try laptop.unsentViews()
        let device = try #require(try server.store.accounts.devices().first { $0.name == "laptop" }).id
        #expect(try server.store.views.receive(entries, device: device) == ViewReceipt(through: 1, flagged: []))
        #expect(try server.store.views.receive(entries, device: device) == ViewReceipt(through: 1, flagged: []))
        #expect(try server.store.audit.resident(AccessTests.deVries).views.count == 1)
        // The device, not told, sends it once more with its next sync: still one.
        try await laptop.sync()
        #expect(try server.store.audit.resident(AccessTests.deVries).views.count == 1)
        await server.stop()
    }

    @Test func ktRecordsTheRowsItShowsAndTheAuditListsThem() async throws {
        let server = try await AccessTests.start()
        let token = try server.token("laptop fatima", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        let db = try temporaryDirectory("kt-views") + "/fatima.sqlite"
        func kt(_ arguments: [String]) async throws -> Spawn.Result {
            let result = try await onThread { try EncryptedReplicaCommandLineTests.kt(arguments) }
            #expect(result.status == 0, "kt \(arguments.joined(separator: " ")): \(result.error)")
            return result
        }
        _ = try await kt(["init", "--db", db, "--server", server.url, "--token", token])
        _ = try await kt(["sync", "--db", db])
        _ = try await kt(["sql", "--db", db, "--purpose", "caseload doornemen", "SELECT c.id, r.last_name FROM cases c JOIN residents r ON r.id = c.resident_id"])
        _ = try await kt(["sql", "--db", db, "SELECT count(*) FROM cases"])  // no row shown by id: nothing to record
        _ = try await kt(["history", "--db", db, "residents", AccessTests.deVries])
        let synced = try await kt(["sync", "--db", db])
        #expect(synced.output.contains("sent 3 recorded view(s)"), "\(synced.output)")

        let views = try server.store.audit.resident(AccessTests.deVries).views
        #expect(views.filter { $0.purpose == "caseload doornemen" }.map(\.table) == ["cases"])
        #expect(views.filter { $0.purpose == "kt history" }.map(\.table) == ["residents"])
        #expect(views.count == 2 && views.allSatisfy { $0.device == "laptop fatima" && $0.finding == "ok" })
        let sanne = try server.store.audit.resident(AccessTests.demo("a0000000", 4)).views
        #expect(sanne.map(\.purpose) == ["caseload doornemen"], "every case shown is recorded, Sanne's too")
        await server.stop()
    }
}
