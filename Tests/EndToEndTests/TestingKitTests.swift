import Foundation
import KeukentafelClient
import KeukentafelProtocol
import KeukentafelTesting
import Testing

/// The testing kit as an app developer uses it (issue 18, item 7): only the public API of
/// `KeukentafelClient` and `KeukentafelTesting`, no `@testable`.
@Suite struct TestingKitTests {
    static let modelFile = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Schemas/datamodel.yaml").path

    @Test("offline, a lost answer, a page cut short and a clock a year ahead: each as a field app meets it")
    func faultsAsAnAppMeetsThem() async throws {
        let server = try await TestServer.start(modelFile: Self.modelFile)
        let clock = TestClock()
        let laptop = try server.replica("laptop fatima", clock: clock, user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        let office = try server.replica("office")
        let network = try TestNetwork(replica: laptop)
        let engine = SyncEngine(replica: laptop, transport: network)
        try await engine.sync()

        // Offline: the write waits on the device, the status says why.
        network.isOffline = true
        let resident = RowID.new(), caseID = RowID.new()
        try await laptop.write { replica in
            try replica.execute("INSERT INTO residents (id, last_name, municipality) VALUES (?, 'Bakker', 'castricum')", [.text(resident)])
            try replica.execute("INSERT INTO cases (id, resident_id, team, status) VALUES (?, ?, 'castricum-noord', 'melding')",
                                [.text(caseID), .text(resident)])
        }
        await #expect(throws: SyncError.self) { try await engine.sync() }
        #expect(engine.currentStatus.connection == .offline && engine.currentStatus.lastError?.code == "unreachable")
        #expect(try laptop.outbox().count > 0)

        // Back online, but the push's answer is lost after the server applied it: the retry is applied once.
        network.isOffline = false
        network.inject(.loseResponse, on: "/v1/push")
        await #expect(throws: SyncError.self) { try await engine.sync() }
        #expect(try server.store.inspection.cell(table: "cases", row: caseID, column: "status")?.value == .text("melding"))
        try await engine.sync()
        #expect(try laptop.outbox().isEmpty)

        // The office's first page arrives cut short: nothing of it is applied, the next sync gets it all.
        let officeNetwork = try TestNetwork(replica: office)
        officeNetwork.inject(.cutResponse, on: "/v1/pull")
        await #expect(throws: SyncError.self) { try await office.sync(transport: officeNetwork) }
        #expect(try office.rowCount("cases") == 0)
        try await office.sync()
        #expect(try office.value("cases", caseID, "status") == .text("melding"))

        // A laptop clock a year ahead: its change is refused with clock_ahead and stays on the device.
        clock.setOffset(365 * 24 * 3_600_000)
        try await laptop.execute("UPDATE cases SET status = 'onderzoek' WHERE id = ?", [.text(caseID)])
        let refusals = engine.refusedChanges()
        let report = try await engine.sync()
        #expect(report.pushed.rejected == 1)
        var events = refusals.makeAsyncIterator()
        #expect(await events.next()?.code == "clock_ahead")
        #expect(try laptop.status().rejectedChanges.count == 1, "kept on the device")
        await server.stop()
    }
}
