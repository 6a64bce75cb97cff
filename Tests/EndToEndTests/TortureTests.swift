import Foundation
import Testing

/// The crash torture in CI size (Tools/torture runs 200 kills and more on a release build): the real
/// `kt` and `ktd` killed with SIGKILL at random instants; nothing lost, nothing stored twice, every
/// file sound, all replicas equal.
@Suite struct TortureTests {
    struct Summary: Decodable {
        var kills: Int
        var clientKills: Int
        var serverKills: Int
        var writesThatMustArrive: Int
        var lost: Int
        var duplicated: Int
        var integrityFailures: Int
        var replicasEqual: Bool
    }

    @Test func killNineAtRandomInstantsLosesNothing() async throws {
        let work = try temporaryDirectory("torture")
        let result = try await onThread {
            try CommandLineTests.runBlocking("kt-torture", ["--kills", "30", "--seed", "11", "--json", "--work", work + "/run"], in: work)
        }
        let summary = try JSONDecoder().decode(Summary.self, from: Data(result.output.utf8))
        #expect(result.status == 0, "\(result.output) \(result.error)")
        #expect(summary.kills == 30 && summary.clientKills > 0 && summary.serverKills > 0)
        #expect(summary.writesThatMustArrive > 0)
        #expect(summary.lost == 0 && summary.duplicated == 0 && summary.integrityFailures == 0)
        #expect(summary.replicasEqual)
    }
}
