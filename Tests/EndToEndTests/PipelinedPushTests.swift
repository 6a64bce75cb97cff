import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelTesting
import Testing

/// `kt sync` pushes batch k + 1 only once the server answered batch k in full, while the replica reads
/// the next batch and records the last one's answers meanwhile (`SyncEngine.pushAll`, issue 17).
@Suite struct PipelinedPushTests {
    /// A laptop with `rows` new residents in its outbox, and an engine that pushes 25 changes per batch
    /// through a network the test can break.
    static func laptopWithWrites(_ server: TestServer, rows: Int) async throws -> (laptop: Replica, changes: Int, network: TestNetwork,
                                                                                    engine: SyncEngine) {
        let laptop = try server.replica("laptop")
        for index in 0..<rows {
            try await laptop.execute("INSERT INTO residents (id, last_name, first_name) VALUES (?, ?, 'Anna')", [.text(newID()), .text("Bewoner \(index)")])
        }
        let network = try TestNetwork(replica: laptop)
        let engine = SyncEngine(replica: laptop, transport: network)
        engine.pushBatchSize = 25
        return (laptop, try laptop.outbox().count, network, engine)
    }

    @Test func manyBatchesArriveInOrderAndEachChangeIsAppliedOnce() async throws {
        let server = try await TestServer.start()
        let (laptop, changes, network, engine) = try await Self.laptopWithWrites(server, rows: 110)
        let report = try await engine.push()
        #expect(report.pushed.applied == changes)
        #expect(network.requests.filter { $0 == "POST /v1/push" }.count == (changes + 24) / 25)
        #expect(try laptop.outbox().isEmpty)
        #expect(try server.store.inspection.counts()["changes"] == Int64(changes), "each change stored once")
        await server.stop()
    }

    @Test func aLostAnswerStopsThePipelineAndTheRetryAppliesNothingTwice() async throws {
        let server = try await TestServer.start()
        let (laptop, changes, network, engine) = try await Self.laptopWithWrites(server, rows: 110)
        // The first answer is lost after the server applied the batch; the second batch, read meanwhile, stays home.
        network.inject(.loseResponse, on: "/v1/push")
        await #expect(throws: SyncError.self) { try await engine.push() }
        #expect(network.requests.filter { $0 == "POST /v1/push" }.count == 1, "no batch goes before the one before it is answered")
        #expect(try laptop.outbox().count == changes, "nothing acknowledged without an answer")
        #expect(try server.store.inspection.counts()["changes"] == 25, "the server applied the first batch")

        let retry = try await SyncEngine(replica: laptop, transport: try TestNetwork(replica: laptop)).push()
        #expect(retry.pushed.applied == changes, "the answered-before batch is answered again from the history")
        #expect(try laptop.outbox().isEmpty)
        #expect(try server.store.inspection.counts()["changes"] == Int64(changes), "each change stored once")
        await server.stop()
    }
}
