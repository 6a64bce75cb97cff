import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelTesting
import Testing

/// A train tunnel between laptop and server (issue 8): every kind of broken connection, on the push
/// and on the pull. The replica stays whole, the outbox is never lost, the reason is stated in words,
/// and once the network is back everything arrives exactly once.
@Suite struct NetworkFaultTests {
    static let faults: [FaultProxy.Fault] = [.resetRequestMidBody, .resetResponseMidBody, .stall, .truncateResponse,
                                             .corruptResponse, .status(500), .status(502), .status(503), .trickle]

    @Test func everyFaultLeavesTheReplicaWholeTheOutboxKeptAndTheReasonInWords() async throws {
        let server = try await TestServer.start()
        _ = try server.store.demo.load()
        let proxy = try FaultProxy(upstreamPort: server.port)
        defer { proxy.stop() }
        let office = try server.replica("office")
        let token = try server.token("laptop")
        let laptop = try Replica.create(path: try temporaryDirectory("tunnel") + "/laptop.sqlite", dataModel: server.store.dataModel,
                                        serverURL: "http://127.0.0.1:\(proxy.port)", token: token)
        var transport = CurlTransport(baseURL: "http://127.0.0.1:\(proxy.port)", token: token)
        transport.timeoutMilliseconds = 30_000
        var impatient = transport
        impatient.timeoutMilliseconds = 1_500  // so a stall ends quickly
        try await laptop.sync(transport: transport)
        try await office.sync()
        var expectedChanges = DemoData.cellCount

        for fault in Self.faults {
            for direction in ["push", "pull"] {
                let label = "\(fault) on the \(direction)"
                if direction == "push" {
                    try await laptop.execute("INSERT INTO notes (id, case_id, body) VALUES (?, ?, ?)",
                                       [.text(newID()), .text(DemoData.deVriesCase), .text("Genoteerd tijdens: \(label)")])
                    expectedChanges += 2  // case_id and body
                } else {
                    try await office.execute("UPDATE cases SET contact_person = ? WHERE id = ?", [.text(label), .text(DemoData.deVriesCase)])
                    try await office.sync()
                    expectedChanges += 1
                }
                let pending = try laptop.outbox().count
                let cursor = try laptop.cursor
                proxy.fault = fault
                let outcome: Result<SyncReport, any Error>
                let faulty: CurlTransport
                if case .stall = fault { faulty = impatient } else { faulty = transport }
                do { outcome = .success(try await laptop.sync(transport: faulty)) } catch { outcome = .failure(error) }
                proxy.fault = .none

                #expect(try await laptop.query("PRAGMA integrity_check").rows.first?.first == .text("ok"), "\(label)")
                switch (fault, outcome) {
                case (.trickle, .success(let report)):
                    #expect(report.pushed.total == pending, "\(label)")
                case (.trickle, .failure(let error)):
                    Issue.record("\(label): a slow connection must still work: \(error)")
                case (_, .success):
                    Issue.record("\(label): the sync claimed success")
                case (_, .failure):
                    #expect(try laptop.outbox().count == pending, "\(label): the outbox is kept until acknowledged")
                    #expect(try laptop.cursor == cursor, "\(label): no partial page was applied")
                    let reason = try laptop.status().lastError ?? ""
                    #expect(["cannot reach", "server refused", "unexpected answer"].contains { reason.contains($0) }, "\(label): \(reason)")
                }
                // The network is back.
                let retry = try await laptop.sync(transport: transport)
                #expect(try laptop.outbox().isEmpty, "\(label)")
                #expect(retry.stillRejected == 0)
                #expect(try laptop.status().lastError == nil)
            }
        }
        try await office.sync()
        #expect(try laptop.snapshot() == office.snapshot(), "both replicas hold the same data")
        #expect(try server.store.inspection.counts()["changes"] == Int64(expectedChanges), "every change stored exactly once")
        await server.stop()
    }

    @Test func theDaemonBacksOffWithJitterAndCarriesOnWhenTheGatewayRecovers() async throws {
        let server = try await TestServer.start()
        let proxy = try FaultProxy(upstreamPort: server.port)
        defer { proxy.stop() }
        let token = try server.token("laptop")
        let laptop = try Replica.create(path: try temporaryDirectory("gateway") + "/laptop.sqlite", dataModel: server.store.dataModel,
                                        serverURL: "http://127.0.0.1:\(proxy.port)", token: token)
        proxy.fault = .status(503)
        let (_, caseID) = try seedCase(on: laptop)
        let daemon = SyncDaemon(engine: try SyncEngine(replica: laptop), pollSeconds: 1)
        daemon.maximumBackoffSeconds = 1
        let events = DaemonEvents()
        let finished = DispatchSemaphore(value: 0)
        Thread {
            daemon.run { event in events.add(event) }
            finished.signal()
        }.start()
        let failures = try await onThread { () -> [Double] in
            try events.waitFor { $0.count >= 3 }
            proxy.fault = .none
            try events.waitFor(pushed: true)
            daemon.stop()
            finished.wait()
            return events.retryDelays
        }
        #expect(events.recovered == failures.count, "it says the server is back, after how many failed attempts")
        #expect(failures.count >= 3)
        #expect(Set(failures).count > 1, "jitter: the pauses differ \(failures)")
        #expect(failures.allSatisfy { $0 >= 0.5 && $0 <= 1 })
        #expect(try server.store.inspection.cell(table: "cases", row: caseID, column: "team")?.value == .text("castricum-noord"))
        #expect(try laptop.outbox().isEmpty)
        await server.stop()
    }
}

/// What a daemon reported, for a test to wait on without sleeping.
final class DaemonEvents: @unchecked Sendable {
    private let condition = NSCondition()
    private var retries: [Double] = []
    private var pushed = false
    private var recoveredAfter: Int?

    func add(_ event: SyncDaemon.Event) {
        condition.lock()
        switch event {
        case .failed(_, let seconds): retries.append(seconds)
        case .pushed(let counts) where counts.applied > 0: pushed = true
        case .recovered(let failures): recoveredAfter = failures
        default: break
        }
        condition.broadcast()
        condition.unlock()
    }

    var retryDelays: [Double] { condition.lock(); defer { condition.unlock() }; return retries }
    var recovered: Int? { condition.lock(); defer { condition.unlock() }; return recoveredAfter }

    /// Blocks until `ready(retry delays)` holds, or fails after 60 s.
    func waitFor(_ ready: ([Double]) -> Bool = { _ in true }, pushed wantPushed: Bool = false) throws {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date().addingTimeInterval(60)
        while !(ready(retries) && (!wantPushed || pushed)) {
            guard condition.wait(until: deadline) else { throw TestFailure("the daemon did not get there: \(retries), pushed \(pushed)") }
        }
    }
}
