import Foundation
import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelTesting
import Testing

/// Continuous sync for an app (issue 18): `connect()` pushes a local write at once, also in the
/// middle of a long-poll, and brings a colleague's change in; `disconnect()` and task cancellation
/// end the request in flight instead of waiting for it.
@Suite struct ConnectTests {
    @Test("an async pull parked in a long-poll ends at once when its task is cancelled, and the engine carries on")
    func cancellingALongPoll() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let office = try server.replica("office")
        let engine = try SyncEngine(replica: office)
        try await engine.sync()

        let started = ContinuousClock.now
        let pull = Task { try await engine.pull(waitSeconds: 55) }
        while server.sync.notifier.waiting == 0 { await Task.yield() }  // parked on the server
        pull.cancel()
        let outcome = await pull.result
        #expect(throws: CancellationError.self) { try outcome.get() }
        #expect(ContinuousClock.now - started < .seconds(20), "ended by the cancellation, not by the server's 30 s deadline")
        #expect(engine.currentStatus.lastError == nil, "a cancellation is not a failure")

        let (_, caseID) = try seedCase(on: office)
        let report = try await engine.sync()
        #expect(report.pushed.applied > 0)
        #expect(try server.store.inspection.cell(table: "cases", row: caseID, column: "team")?.value == .text("castricum-noord"))
    }

    @Test("cancel() ends a blocking pull parked in a long-poll, from another thread")
    func cancellingABlockingPull() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let office = try server.replica("office")
        let engine = try SyncEngine(replica: office)
        try await engine.sync()
        let blocking = Task { try await onThread { try engine.pull(waitSeconds: 55) } }
        while server.sync.notifier.waiting == 0 { await Task.yield() }
        engine.cancel()
        await #expect(throws: CancellationError.self) { try await blocking.value }
    }

    @Test("connect(): a local write goes out during a long-poll, a colleague's change comes in, disconnect() ends it at once")
    func aConnectedEngine() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let laptop = try server.replica("laptop"), office = try server.replica("office")
        let officeEngine = try SyncEngine(replica: office)
        try await officeEngine.sync()

        let engine = try SyncEngine(replica: laptop)
        let connected = SyncStatusTests.collect(engine.statusUpdates()) { $0.connection == .connected && $0.hasSynced }
        engine.connect(pollSeconds: 60)
        #expect(engine.isConnected)
        #expect(await connected.value.last?.connection == .connected)
        while server.sync.notifier.waiting == 0 { await Task.yield() }  // the laptop is parked in its 60 s long-poll

        // cancel() ends the step in flight only: the connected engine long-polls again.
        engine.cancel()
        // The abandoned poll stays parked on the server until its deadline; a second one is the new poll.
        let givingUp = ContinuousClock.now + .seconds(20)
        while server.sync.notifier.waiting < 2 && ContinuousClock.now < givingUp { await Task.yield() }
        #expect(server.sync.notifier.waiting >= 2 && engine.isConnected, "the loop long-polls again after cancel()")

        // A consultant's write goes out without waiting for the long-poll to end: the office, itself
        // long-polling for 50 s, receives it.
        let written = ContinuousClock.now
        let (_, caseID) = try seedCase(on: laptop)
        let received = try await officeEngine.pull(waitSeconds: 50)
        #expect(ContinuousClock.now - written < .seconds(15), "pushed at once, not after the laptop's long-poll (30 s on the server)")
        #expect(received.pulled.cellsApplied > 0)
        #expect(try office.value("cases", caseID, "team") == .text("castricum-noord"))

        // The office's change reaches the connected laptop, seen through an observed query.
        let statuses = try laptop.observe("SELECT status FROM cases WHERE id = ?", [.text(caseID)])
        try await office.execute("UPDATE cases SET status = 'onderzoek' WHERE id = ?", [.text(caseID)])
        try await officeEngine.sync()
        let seen = Task {
            for try await result in statuses where result.rows.first?.first == .text("onderzoek") { return true }
            return false
        }
        let cancelLater = Task { try await Task.sleep(for: .seconds(60)); seen.cancel() }
        #expect(try await seen.value, "the laptop received the office's change without a sync call")
        cancelLater.cancel()

        let parked = ContinuousClock.now
        await engine.disconnect()
        #expect(ContinuousClock.now - parked < .seconds(15), "the long-poll was ended, not waited out")
        #expect(!engine.isConnected)
        #expect(engine.currentStatus.connection == .offline)
        #expect(try laptop.outbox().isEmpty)
    }
}
