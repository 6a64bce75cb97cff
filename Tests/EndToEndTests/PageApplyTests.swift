import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelTesting
import Testing

/// Applying a pulled page: every value and version of new rows of many shapes lands, and a row met
/// twice in one page merges as if the first had been written before the second. (Written for a
/// multi-row variant of the apply that was measured and not kept: `docs/benchmarks.md`, session 17.)
@Suite("Applying a page")
struct PageApplyTests {
    static let node = NodeID(rawValue: 0x5eed_0000_0000_0077)!

    static func version(_ hlc: UInt64) -> CellVersion { CellVersion(hlc: (1 << 40) + hlc, node: node) }

    static func page(_ rows: [FeedRow], schemaVersion: Int) -> PullResponse {
        PullResponse(cursor: 1, more: true, rows: rows, conflicts: [], serverTime: 0, schemaVersion: schemaVersion)
    }

    static func caseID(_ i: Int) -> String { String(format: "c1000000-0000-4000-8000-%012d", i) }

    @Test("a page of new rows of many shapes and tables applies every value and version")
    func newRowsOfManyShapes() async throws {
        let server = try await TestServer.start()
        let replica = try server.replica("batched")
        var rows: [FeedRow] = []
        var expected: [String: [String: CellValue]] = [:]
        for i in 0..<150 {
            var cells = [FeedCell(column: "resident_id", value: .text("r-\(i)"), version: Self.version(UInt64(i))),
                         FeedCell(column: "team", value: .text("team-\(i % 3)"), version: Self.version(UInt64(i)))]
            if i % 2 == 0 { cells.append(FeedCell(column: "status", value: .text("melding"), version: Self.version(UInt64(i) + 1))) }
            if i % 3 == 0 { cells.append(FeedCell(column: "question", value: .text("vraag \(i) 'met' \"tekens\""), version: Self.version(7))) }
            if i % 5 == 0 { cells.append(FeedCell(column: "safety_risk", value: .integer(1), version: Self.version(3))) }
            if i % 7 == 0 { cells.append(FeedCell(column: "next_contact_due", value: .null, version: Self.version(4))) }
            rows.append(FeedRow(table: "cases", row: Self.caseID(i), cells: cells))
            expected[Self.caseID(i)] = Dictionary(uniqueKeysWithValues: cells.map { ($0.column, $0.value) })
            if i % 10 == 0 {
                rows.append(FeedRow(table: "residents", row: "r-\(i)", cells: [
                    FeedCell(column: "last_name", value: .text("Jansen \(i)"), version: Self.version(1)),
                ]))
            }
        }
        let counts = try replica.applyForBenchmark(Self.page(rows, schemaVersion: replica.dataModel.version))
        #expect(counts.cellsApplied == rows.reduce(0) { $0 + $1.cells.count })

        let columns = ["resident_id", "team", "status", "question", "safety_risk", "next_contact_due"]
        let stored = try await replica.query("SELECT id, " + columns.joined(separator: ", ") + " FROM cases ORDER BY id").rows
        #expect(stored.count == 150)
        for row in stored {
            let id = try #require(row[0].string)
            let want = try #require(expected[id])
            for (offset, column) in columns.enumerated() {
                #expect(row[offset + 1] == (want[column] ?? .null), "\(id).\(column)")
            }
            let versions = try replica.storedVersions(table: "cases", row: id)
            #expect(versions.count == want.count, "\(id): one version per cell that came")
            for cell in rows.first(where: { $0.row == id })!.cells {
                #expect(versions[cell.column] == cell.version, "\(id).\(cell.column)")
            }
        }
        #expect(try await replica.query("SELECT count(*) FROM residents").rows == [[.integer(15)]])
        #expect(try replica.storedVersions(table: "residents", row: "r-40")["last_name"] == Self.version(1))
        #expect(try replica.outboxCounts().pending == 0, "applied, not captured as local writes")
    }

    @Test("a row met twice in one page merges per cell, and a page with a tombstone keeps it")
    func aRowTwiceInOnePage() async throws {
        let server = try await TestServer.start()
        let replica = try server.replica("twice")
        let a = Self.caseID(1), b = Self.caseID(2), c = Self.caseID(3), d = Self.caseID(4)
        let rows = [
            FeedRow(table: "cases", row: a, cells: [
                FeedCell(column: "status", value: .text("melding"), version: Self.version(10)),
                FeedCell(column: "team", value: .text("noord"), version: Self.version(10)),
            ]),
            FeedRow(table: "cases", row: b, cells: [FeedCell(column: "team", value: .text("zuid"), version: Self.version(10))]),
            // A again: a newer status, an older team (which loses).
            FeedRow(table: "cases", row: a, cells: [
                FeedCell(column: "status", value: .text("plan"), version: Self.version(20)),
                FeedCell(column: "team", value: .text("oost"), version: Self.version(5)),
            ]),
            // A row deleted after its last edit never appears; one whose tombstone is older lives.
            FeedRow(table: "cases", row: c, cells: [
                FeedCell(column: "team", value: .text("west"), version: Self.version(10)),
                FeedCell(column: Merge.deletedColumn, value: .integer(1), version: Self.version(11)),
            ]),
            FeedRow(table: "cases", row: d, cells: [
                FeedCell(column: Merge.deletedColumn, value: .integer(1), version: Self.version(9)),
                FeedCell(column: "team", value: .text("midden"), version: Self.version(12)),
            ]),
        ]
        let counts = try replica.applyForBenchmark(Self.page(rows, schemaVersion: replica.dataModel.version))
        #expect(counts.cellsApplied == 2 + 1 + 1 + 2 + 2, "the older team of A's second row is not applied")
        #expect(try await replica.query("SELECT id, status, team FROM cases ORDER BY id").rows == [
            [.text(a), .text("plan"), .text("noord")],
            [.text(b), .null, .text("zuid")],
            [.text(d), .null, .text("midden")],
        ])
        let versions = try replica.storedVersions(table: "cases", row: a)
        #expect(versions["status"] == Self.version(20) && versions["team"] == Self.version(10))
        #expect(try replica.storedVersions(table: "cases", row: c)[Merge.deletedColumn] == Self.version(11))
    }
}
