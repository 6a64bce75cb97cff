import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelTesting
import Testing

/// Random offline work on three replicas, synced in random order: at quiescence every replica holds
/// exactly the server's state, and nothing a replica wrote is missing from the server's history.
@Suite struct ConvergenceTests {
    @Test(arguments: [11, 23, 47, 101, 202, 303, 404, 505] as [UInt64])
    func randomOfflineEditsConverge(seed: UInt64) async throws {
        var random = SplitMix64(seed: seed)
        let server = try await TestServer.start()
        let clock = TestClock()
        let replicas = try (0..<3).map { try server.replica("device-\($0)", clock: clock) }
        var caseIDs: [String] = []
        for _ in 0..<4 { caseIDs.append(try seedCase(on: replicas[0]).case) }
        try await replicas[0].sync()
        for replica in replicas.dropFirst() { try await replica.sync() }

        let statuses = ["melding", "onderzoek", "plan", "aanvraag", "gesloten"]
        var written = 0
        var notesWritten = 0
        for _ in 0..<200 {
            let replica = replicas[random.below(3)]
            let caseID = caseIDs[random.below(caseIDs.count)]
            switch random.below(10) {
            case 0:
                try await replica.execute("DELETE FROM cases WHERE id = ?", [.text(caseID)])
            case 1, 2:
                try await replica.execute("INSERT INTO notes (id, case_id, body) VALUES (?, ?, ?)",
                                    [.text(newID()), .text(caseID), .text("note \(written)")])
                notesWritten += 1
            case 3:
                try await replica.sync()
            default:
                let column = random.below(2) == 0 ? "status" : "contact_person"
                let value = column == "status" ? statuses[random.below(statuses.count)] : "person \(random.below(5))"
                try await replica.execute("UPDATE cases SET \(column) = ? WHERE id = ?", [.text(value), .text(caseID)])
            }
            written += 1
        }
        // Quiescence: everyone pushes, then everyone pulls what the others pushed.
        for replica in replicas { try await replica.sync() }
        for replica in replicas { try await replica.sync() }

        let reference = try replicas[0].snapshot()
        for replica in replicas.dropFirst() {
            let snapshot = try replica.snapshot()
            #expect(snapshot == reference)
            if snapshot != reference {
                for (table, rows) in snapshot where rows != reference[table] {
                    print("DIFF \(table)\n mine: \(rows)\n ref:  \(reference[table] ?? [])")
                    print("replica node \(replica.node)")
                }
            }
        }
        for replica in replicas { #expect(try replica.outbox().isEmpty) }
        // Every case the server says is live is on the replicas, and only those.
        let live = try caseIDs.filter { try server.store.inspection.rowIsLive(table: "cases", row: $0) }
        #expect(Set((reference["cases"] ?? []).map { $0[0] }) == Set(live.map(CellValue.text)))
        // Every note written anywhere survives (append-only rows never conflict away).
        #expect(try replicas[0].rowCount("notes") == notesWritten)
        await server.stop()
    }
}

