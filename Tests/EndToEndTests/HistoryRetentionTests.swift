import Foundation
import KeukentafelProtocol
@testable import KeukentafelServer
import KeukentafelTesting
import Testing

/// `ktd admin prune-history` (issue 19): history older than the retention period goes, current values,
/// open conflicts and recent history stay, on both databases.
@Suite struct HistoryRetentionTests {
    static let threeYears: Int64 = 3 * 365 * 86_400_000

    @Test(arguments: [StoreDialect.sqlite, .postgresql])
    func historyOlderThanThePeriodGoesExceptWhereAConflictIsOpen(dialect: StoreDialect) async throws {
        let clock = TestClock(offsetMilliseconds: -Self.threeYears)  // the server's clock, three years ago
        let model = try shippedDataModel()
        let store = try await onThread { () -> ServerStore in
            switch dialect {
            case .sqlite: return try ServerStore(directory: try temporaryDirectory("retention"), dataModel: model, clock: clock.now)
            case .postgresql: return try ServerStore(postgres: try TestPostgres.freshDatabase("retention"), dataModel: model, clock: clock.now)
            }
        }
        let laptop = NodeID.random(), office = NodeID.random()
        var counter = 0
        func change(_ row: String, _ column: String, _ value: String, node: NodeID, base: CellVersion? = nil) -> Change {
            counter += 1
            let hlc = HybridLogicalClock.timestamp(milliseconds: UInt64(clock.now()))
            return Change(id: "\(node)-" + String(format: "%08d", counter), table: "cases", row: row, column: column, value: .text(value),
                          version: CellVersion(hlc: hlc, node: node), base: base)
        }
        let quiet = RowID.new(), disputed = RowID.new()
        // Three years ago: two cases written; the disputed one gets a conflict that nobody resolves.
        let firstPush = [change(quiet, "team", "castricum-noord", node: laptop), change(quiet, "status", "aanvraag", node: laptop)]
        _ = try store.push(firstPush + [change(disputed, "team", "castricum-noord", node: laptop), change(disputed, "status", "aanvraag", node: laptop)],
                           device: "office")
        let concurrent = try store.push([change(disputed, "status", "beschikking", node: office)], device: "office")
        #expect(concurrent.results.first?.status == .conflict)
        // Today: the quiet case changes once more.
        clock.setOffset(0)
        _ = try store.push([change(quiet, "question", "Hulp bij de boodschappen", node: laptop)], device: "office")
        #expect(try store.history(table: "cases", row: quiet).count == 3)

        let dryRun = try store.retention.prune(olderThanDays: 730, actor: "test", dryRun: true)
        #expect(dryRun.entries == 1 && dryRun.changes == 2, "the quiet case's first push: one entry of two changes")
        #expect(dryRun.keptForOpenConflicts == 2, "the disputed case's two entries")
        #expect(try store.history(table: "cases", row: quiet).count == 3, "a dry run removes nothing")

        let report = try store.retention.prune(olderThanDays: 730, actor: "test")
        #expect(report.entries == 1 && report.changes == 2 && report.keptForOpenConflicts == 2 && !report.dryRun)
        #expect(report.summary == "1 history entry (2 changes)")
        let quietHistory = try store.history(table: "cases", row: quiet)
        #expect(quietHistory.map(\.column) == ["question"], "only today's change is left")
        #expect(try store.history(table: "cases", row: disputed).count == 3, "an open conflict keeps its row's history")
        // Current values do not come from the history.
        #expect(try store.inspection.cell(table: "cases", row: quiet, column: "status")?.value == .text("aanvraag"))
        #expect(try store.inspection.cell(table: "cases", row: quiet, column: "team")?.value == .text("castricum-noord"))
        let audit = try store.audit.entries().filter { $0.action == "history.prune" }
        #expect(audit.count == 1 && audit.first?.detail?.hasPrefix("1 history entry (2 changes) removed") == true)

        // Once decided, the disputed case's old history goes on the next run.
        let conflict = try #require(try store.conflicts.list(unresolvedOnly: true).first)
        _ = try store.conflicts.resolve(id: conflict.id, .keepWinner, by: "teamleider")
        let afterDecision = try store.retention.prune(olderThanDays: 730, actor: "test")
        #expect(afterDecision.entries == 2 && afterDecision.keptForOpenConflicts == 0)
        #expect(try store.history(table: "cases", row: disputed).isEmpty)
        #expect(try store.inspection.cell(table: "cases", row: disputed, column: "status")?.value != nil)

        // A retry of a pruned change (its answer was lost, its laptop stayed away) changes nothing.
        let retry = try store.push(firstPush, device: "office")
        #expect(retry.results.map(\.status) == [.applied, .applied])
        #expect(try store.inspection.cell(table: "cases", row: quiet, column: "status")?.value == .text("aanvraag"))
        let afterRetry = try store.history(table: "cases", row: quiet)
        #expect(afterRetry.map(\.column) == ["team", "status", "question"], "the retry is in the history again, in version order: \(afterRetry)")

        #expect(throws: AdminError.self) { try store.retention.prune(olderThanDays: 7, actor: "test") }
    }

    @Test func periodsInWords() {
        #expect(HistoryRetention.days("90d") == 90)
        #expect(HistoryRetention.days("26w") == 182)
        #expect(HistoryRetention.days("18m") == 540)
        #expect(HistoryRetention.days("2Y") == 730)
        for wrong in ["", "2", "y", "2x", "-3d", "0d", "two years"] { #expect(HistoryRetention.days(wrong) == nil, "\(wrong)") }
    }
}
