import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelSQLite
import Testing

/// The replica's versions: one `_kt_versions` row per synced row (decision 0014), and replicas made
/// before that, with one `_kt_clock` row per cell, moving to it when opened.
@Suite("Replica layout")
struct ReplicaLayoutTests {
    /// A replica made by the release before decision 0014 (`sqlite3 .dump`): 220 pulled cells, a note
    /// deleted and synced, a note deleted and a case edited offline (two changes in the outbox).
    static let oldReplicaDump = repositoryRoot.appendingPathComponent("Tests/Fixtures/replica-per-cell-versions.sql").path

    @Test("a replica with one version row per cell opens with every version, kept value and waiting change")
    func oldLayoutMigrates() throws {
        let path = try temporaryDirectory("old-replica") + "/old.sqlite"
        var before: (versions: Set<String>, kept: Set<String>, outbox: [[CellValue]], cases: [[CellValue]], notes: [[CellValue]])
        do {
            let raw = try SQLiteConnection(path: path)
            try raw.execute(try String(contentsOfFile: Self.oldReplicaDump, encoding: .utf8))
            before = (Set(try raw.query("SELECT tbl, row_id, col, hlc, node FROM _kt_clock").map { "\($0[0])|\($0[1])|\($0[2])|\($0[3])|\($0[4])" }),
                      Set(try raw.query("SELECT tbl, row_id, col, val FROM _kt_clock WHERE val IS NOT NULL").map { "\($0)" }),
                      try raw.query("SELECT * FROM _kt_outbox ORDER BY seq"),
                      try raw.query("SELECT * FROM cases ORDER BY id"), try raw.query("SELECT * FROM notes ORDER BY id"))
        }
        #expect(before.versions.count == 221 && before.kept.count == 12 && before.outbox.count == 2, "the fixture is what it says")

        let replica = try Replica(path: path)
        var after = Set<String>()
        for row in try replica.query("SELECT tbl, row_id, versions FROM _kt_versions").rows {
            guard case .text(let text) = row[2] else { continue }
            for entry in try RowVersions(decoding: text).entries {
                after.insert("\(row[0])|\(row[1])|\(entry.column)|\(entry.version.hlc)|\(entry.version.node.rawValue)")
            }
        }
        #expect(after == before.versions, "every cell keeps its version")
        #expect(Set(try replica.query("SELECT tbl, row_id, col, val FROM _kt_kept").rows.map { "\($0)" }) == before.kept)
        #expect(try replica.query("SELECT * FROM _kt_outbox ORDER BY seq").rows == before.outbox, "waiting changes stay waiting")
        #expect(try replica.query("SELECT * FROM cases ORDER BY id").rows == before.cases)
        #expect(try replica.query("SELECT * FROM notes ORDER BY id").rows == before.notes)
        #expect(try replica.query("SELECT count(*) FROM sqlite_master WHERE sql LIKE '%_kt_clock%'").rows[0][0] == .integer(0),
                "no table or trigger of the old layout is left")

        // The rebuilt capture triggers stamp a write with the version the cell had as its base.
        let caseID = "c0000000-0000-4000-8000-000000000002"
        let old = try #require(try replica.storedVersions(table: "cases", row: caseID)["status"])
        try replica.execute("UPDATE cases SET status = 'plan' WHERE id = ?", [.text(caseID)])
        let change = try #require(try replica.outbox().last?.change)
        #expect(change.column == "status" && change.base == old && change.version > old)
        #expect(try replica.storedVersions(table: "cases", row: caseID)["status"] == change.version)

        // Opening it again changes nothing more.
        let again = try Replica(path: path)
        #expect(try again.knownCellCount() == before.versions.count)
    }

    @Test("versions text round-trips, and damaged text is an error, not fewer versions")
    func versionsTextRoundTrips() throws {
        let node = try #require(NodeID(rawValue: 0x1a3f_0011_2233_abcd))
        var versions = RowVersions()
        versions.set("status", CellVersion(hlc: 0x18f3_a2b4_c5d6_0001, node: node))
        versions.set(Merge.deletedColumn, CellVersion(hlc: 1, node: node))
        versions.set("status", CellVersion(hlc: 0x18f3_a2b4_c5d6_0002, node: node))
        #expect(versions.encoded == "status=18f3a2b4c5d60002-1a3f00112233abcd;_deleted=0000000000000001-1a3f00112233abcd;")
        #expect(try RowVersions(decoding: versions.encoded) == versions)
        #expect(versions.newestOtherThanTombstone == CellVersion(hlc: 0x18f3_a2b4_c5d6_0002, node: node))
        #expect(try RowVersions(decoding: "").isEmpty)
        let good = "18f3a2b4c5d60002-1a3f00112233abcd"
        for damaged in ["status=\(good)", "status=1-2;", "=\(good);", "status=\(good.uppercased());", "status=18f3a2b4c5d60002-0000000000000000;",
                        "status=\(good)0;", "status=\(good);;"] {
            #expect(throws: RowVersionsError.self, "\(damaged)") { try RowVersions(decoding: damaged) }
        }
    }
}
