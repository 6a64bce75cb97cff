import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelTesting
import Testing

/// Scenarios (a)–(f) of the foundation issue: a real server on loopback, real replicas, libcurl.
@Suite struct SyncScenarioTests {
    @Test("(a) different columns of one case edited offline on both sides: both edits kept everywhere")
    func differentColumnsBothSurvive() async throws {
        let server = try await TestServer.start()
        let laptop = try server.replica("laptop"), office = try server.replica("office")
        let (_, caseID) = try seedCase(on: laptop)
        try await laptop.sync()
        try await office.sync()

        try await laptop.execute("UPDATE cases SET status = 'plan' WHERE id = ?", [.text(caseID)])
        try await office.execute("UPDATE cases SET contact_person = 'Fatima' WHERE id = ?", [.text(caseID)])
        try await laptop.sync()
        try await office.sync()
        try await laptop.sync()

        for replica in [laptop, office] {
            #expect(try replica.value("cases", caseID, "status") == .text("plan"))
            #expect(try replica.value("cases", caseID, "contact_person") == .text("Fatima"))
            #expect(try replica.conflicts().isEmpty)
        }
        #expect(try server.store.inspection.cell(table: "cases", row: caseID, column: "status")?.value == .text("plan"))
        #expect(try server.store.inspection.cell(table: "cases", row: caseID, column: "contact_person")?.value == .text("Fatima"))
        #expect(try server.store.conflicts.list().isEmpty)
        await server.stop()
    }

    @Test("(b) the same column edited on both: one winner everywhere, one conflict record with both values")
    func sameColumnOneWinnerOneConflict() async throws {
        let server = try await TestServer.start()
        let clock = TestClock()  // shared, so the office's write is later than the laptop's
        let laptop = try server.replica("laptop", clock: clock), office = try server.replica("office", clock: clock)
        let (_, caseID) = try seedCase(on: laptop)
        try await laptop.sync()
        try await office.sync()

        try await laptop.execute("UPDATE cases SET status = 'onderzoek' WHERE id = ?", [.text(caseID)])
        try await office.execute("UPDATE cases SET status = 'plan' WHERE id = ?", [.text(caseID)])
        try await office.sync()
        let laptopReport = try await laptop.sync()
        try await office.sync()

        #expect(laptopReport.pushed.conflicts == 1)
        for replica in [laptop, office] { #expect(try replica.value("cases", caseID, "status") == .text("plan")) }
        #expect(try server.store.inspection.cell(table: "cases", row: caseID, column: "status")?.value == .text("plan"))

        let conflicts = try server.store.conflicts.list()
        try #require(conflicts.count == 1)
        let conflict = conflicts[0]
        #expect(conflict.column == "status")
        #expect(conflict.winnerValue == .text("plan"))
        #expect(conflict.loserValue == .text("onderzoek"))
        #expect(conflict.loserVersion.node == laptop.node)
        #expect(conflict.winnerVersion.node == office.node)
        #expect(conflict.review, "cases.status is a review column in the data model")
        #expect(conflict.base != nil)
        // Both replicas hold the record; the laptop knows its write lost.
        #expect(try laptop.conflicts() == conflicts)
        #expect(try office.conflicts() == conflicts)
        #expect(try laptop.status().lostWrites == 1)
        #expect(try office.status().lostWrites == 0)
        await server.stop()
    }

    @Test("(c) a deletion later than a concurrent edit wins; the edit is kept in a conflict record")
    func deleteWinsOverEarlierEdit() async throws {
        let server = try await TestServer.start()
        let clock = TestClock()
        let laptop = try server.replica("laptop", clock: clock), office = try server.replica("office", clock: clock)
        let (_, caseID) = try seedCase(on: laptop)
        try await laptop.sync()
        try await office.sync()

        try await laptop.execute("UPDATE cases SET question = 'Hulp bij douchen' WHERE id = ?", [.text(caseID)])
        try await office.execute("DELETE FROM cases WHERE id = ?", [.text(caseID)])
        try await laptop.sync()
        try await office.sync()
        try await laptop.sync()

        for replica in [laptop, office] { #expect(try replica.value("cases", caseID, "id") == nil) }
        #expect(try !server.store.inspection.rowIsLive(table: "cases", row: caseID))
        let conflicts = try server.store.conflicts.list()
        try #require(conflicts.count == 1)
        #expect(conflicts[0].rule == "delete-wins")
        #expect(conflicts[0].column == "question")
        #expect(conflicts[0].loserValue == .text("Hulp bij douchen"))
        #expect(try laptop.conflicts() == conflicts)
        await server.stop()
    }

    @Test("(c) an edit later than a concurrent deletion wins; the row comes back whole everywhere")
    func editWinsOverEarlierDelete() async throws {
        let server = try await TestServer.start()
        let clock = TestClock()
        let laptop = try server.replica("laptop", clock: clock), office = try server.replica("office", clock: clock)
        let (_, caseID) = try seedCase(on: laptop)
        try await laptop.sync()
        try await office.sync()

        try await office.execute("DELETE FROM cases WHERE id = ?", [.text(caseID)])
        try await laptop.execute("UPDATE cases SET question = 'Hulp bij douchen' WHERE id = ?", [.text(caseID)])
        // Either arrival order must end the same way.
        try await office.sync()
        try await laptop.sync()
        try await office.sync()

        for replica in [laptop, office] {
            #expect(try replica.value("cases", caseID, "question") == .text("Hulp bij douchen"))
            #expect(try replica.value("cases", caseID, "team") == .text("castricum-noord"), "the revived row is complete")
            #expect(try replica.value("cases", caseID, "status") == .text("melding"))
        }
        #expect(try laptop.snapshot() == office.snapshot())
        let conflicts = try server.store.conflicts.list()
        try #require(conflicts.count == 1)
        #expect(conflicts[0].rule == "edit-wins")
        #expect(conflicts[0].column == Merge.deletedColumn)
        #expect(conflicts[0].loserVersion.node == office.node)
        await server.stop()
    }

    @Test("(d) a push whose response is lost is retried and applied exactly once")
    func lostPushResponseIsRetriedOnce() async throws {
        let server = try await TestServer.start()
        let laptop = try server.replica("laptop")
        let (_, caseID) = try seedCase(on: laptop)
        try await laptop.execute("UPDATE cases SET status = 'plan' WHERE id = ?", [.text(caseID)])
        let pending = try laptop.outbox().count

        let network = try TestNetwork(replica: laptop)
        network.inject(.loseResponse, on: "/v1/push")
        await #expect(throws: SyncError.self) { try await laptop.sync(transport: network) }
        #expect(network.pendingFaults == 0 && network.requests == ["POST /v1/push"], "the server answered, the answer was dropped")
        #expect(try laptop.outbox().count == pending, "nothing leaves the outbox without an answer")
        let changesAfterFirst = try server.store.inspection.counts()["changes"]
        #expect(changesAfterFirst == Int64(pending), "the server did apply the batch")

        let report = try await laptop.sync()
        #expect(report.pushed.applied == pending, "the retry is answered with the first results")
        #expect(try laptop.outbox().isEmpty)
        #expect(try server.store.inspection.counts()["changes"] == Int64(pending), "nothing applied twice")
        #expect(try server.store.history(table: "cases", row: caseID, column: "status").map(\.value) == [.text("melding"), .text("plan")])
        #expect(try server.store.conflicts.list().isEmpty)
        await server.stop()
    }

    @Test("(e) a pull interrupted mid-page leaves no partial state and resumes from the cursor")
    func interruptedPullResumes() async throws {
        let server = try await TestServer.start()
        let laptop = try server.replica("laptop"), office = try server.replica("office")
        for i in 0..<12 { _ = try seedCase(on: laptop, name: "Inwoner \(i)") }
        try await laptop.sync()
        let serverCells = try server.store.inspection.counts()["cells"] ?? 0
        let firstPage = try feedPages(server.store, pageSize: 10)[0]
        #expect(firstPage.cells >= 10, "a page ends between rows")

        // Page 1 (10 cells and the rest of its last row) applies; page 2 fails after its first row.
        let pagesStarted = Counter()
        office.afterApplyingRow = { index in
            if index == 0, pagesStarted.increment() == 2 { throw TestFailure("power cut during page 2") }
        }
        await #expect(throws: TestFailure.self) { try await office.sync(pageSize: 10) }
        #expect(try office.cursor == firstPage.cursor, "the cursor of the last complete page")
        #expect(try office.knownCellCount() == firstPage.cells, "exactly page 1, nothing of page 2")

        office.afterApplyingRow = nil
        let report = try await office.sync(pageSize: 10)
        #expect(report.pulled.cellsApplied == Int(serverCells) - firstPage.cells)
        #expect(try office.knownCellCount() == Int(serverCells))
        #expect(try office.snapshot() == laptop.snapshot())
        await server.stop()
    }

    @Test("(e) a truncated pull response changes nothing")
    func truncatedPullChangesNothing() async throws {
        let server = try await TestServer.start()
        let laptop = try server.replica("laptop"), office = try server.replica("office")
        _ = try seedCase(on: laptop)
        try await laptop.sync()
        let network = try TestNetwork(replica: office)
        network.inject(.cutResponse, on: "/v1/pull")
        await #expect(throws: SyncError.self) { try await office.sync(transport: network) }
        #expect(try office.cursor == 0)
        #expect(try office.rowCount("cases") == 0)
        try await office.sync()
        #expect(try office.rowCount("cases") == 1)
        await server.stop()
    }

    @Test("(f) a clock a year ahead: refused with clock_ahead, kept on the device, sent once the clock is right")
    func clockAheadIsRefusedAndKept() async throws {
        let server = try await TestServer.start()
        let officeClock = TestClock()
        let office = try server.replica("office", clock: officeClock)
        let (_, caseID) = try seedCase(on: office)
        try await office.sync()

        let wrongClock = TestClock(offsetMilliseconds: 365 * 24 * 3600 * 1000)
        let laptop = try server.replica("laptop", clock: wrongClock)
        try await laptop.sync()
        try await laptop.execute("UPDATE cases SET status = 'gesloten' WHERE id = ?", [.text(caseID)])
        let report = try await laptop.sync()

        #expect(report.pushed.rejected == 1)
        let outbox = try laptop.outbox()
        try #require(outbox.count == 1)
        #expect(outbox[0].state == "rejected")
        #expect(outbox[0].code == "clock_ahead")
        #expect(outbox[0].message?.contains("365 days ahead") == true, "\(outbox[0].message ?? "")")
        #expect(try laptop.value("cases", caseID, "status") == .text("gesloten"), "the change stays visible on the device")
        #expect(try server.store.inspection.cell(table: "cases", row: caseID, column: "status")?.value == .text("melding"))
        #expect(try laptop.status().rejectedChanges.first?.code == "clock_ahead")

        // The clock is set right: the change gets a sane version and goes through.
        wrongClock.setOffset(0)
        let fixed = try await laptop.sync()
        #expect(fixed.restamped == 1)
        #expect(fixed.pushed.applied == 1)
        #expect(try laptop.outbox().isEmpty)
        let stored = try #require(try server.store.inspection.cell(table: "cases", row: caseID, column: "status"))
        #expect(stored.value == .text("gesloten"))
        #expect(stored.version.milliseconds < UInt64(Date().timeIntervalSince1970 * 1000) + 60_000)

        // And it does not win later writes: the office's next edit is newer.
        try await office.execute("UPDATE cases SET status = 'plan' WHERE id = ?", [.text(caseID)])
        try await office.sync()
        try await laptop.sync()
        #expect(try laptop.value("cases", caseID, "status") == .text("plan"))
        await server.stop()
    }

    @Test("a local write made while a pull is in flight is not overwritten by an older version")
    func localWriteDuringPullSurvives() async throws {
        let server = try await TestServer.start()
        let clock = TestClock()
        let laptop = try server.replica("laptop", clock: clock), office = try server.replica("office", clock: clock)
        let (_, caseID) = try seedCase(on: office)
        try await office.sync()
        try await laptop.sync()

        try await office.execute("UPDATE cases SET contact_person = 'Anne' WHERE id = ?", [.text(caseID)])
        try await office.sync()
        // The pull is under way; the consultant types in between: her write is newer.
        try await laptop.execute("UPDATE cases SET contact_person = 'Bram' WHERE id = ?", [.text(caseID)])
        let engine = SyncEngine(replica: laptop, transport: CurlTransport(baseURL: server.url, token: try laptop.token))
        _ = try await onThread { try engine.pull() }  // libcurl blocks: never on the cooperative pool
        #expect(try laptop.value("cases", caseID, "contact_person") == .text("Bram"))
        #expect(try laptop.outbox().count == 1)
        try await laptop.sync()
        try await office.sync()
        #expect(try office.value("cases", caseID, "contact_person") == .text("Bram"))
        #expect(try server.store.conflicts.list().count == 1, "concurrent edits of one cell are recorded")
        await server.stop()
    }

    @Test("rows inserted with kt_new_id() get ascending version-7 ids and sync like any other")
    func newIDsFromSQL() async throws {
        let server = try await TestServer.start()
        let laptop = try server.replica("laptop"), office = try server.replica("office")
        try await laptop.execute("INSERT INTO residents (id, last_name, municipality) VALUES (kt_new_id(), 'Jansen', 'castricum')")
        try await laptop.execute("INSERT INTO residents (id, last_name, municipality) VALUES (kt_new_id(), 'Bakker', 'castricum')")
        let ids = try await laptop.query("SELECT id FROM residents ORDER BY last_name DESC").rows.map { $0[0].description }
        #expect(ids.count == 2 && ids[0] < ids[1], "Jansen's id was made first: \(ids)")
        #expect(ids.allSatisfy { isCanonicalUUID($0) && Array($0)[14] == "7" }, "\(ids)")
        #expect(try await laptop.sync().pushed.applied > 0)
        try await office.sync()
        #expect(Set(try await office.query("SELECT id FROM residents").rows.map { $0[0].description }).isSuperset(of: ids))
        await server.stop()
    }
}

