import Foundation
import Testing
import KeukentafelProtocol
@testable import KeukentafelServer

/// The push path reads and writes in windows of changes (decision 0016). Whatever the windowing, a
/// batch must answer and store exactly what the same changes pushed one at a time answer and store.
@Suite struct PushWindowTests {
    @Test(arguments: [StoreDialect.sqlite, .postgresql])
    func aBatchAnswersAndStoresAsItsChangesOneAtATime(dialect: StoreDialect) async throws {
        let changes = Self.mixedBatch(seed: 16, count: 1_100)
        #expect(changes.count > 2 * PushContext.windowSize, "the batch spans several windows")
        let now = Self.wallMilliseconds + 60_000
        let (batched, oneByOne) = try await onThread {
            let batched = try Self.store(dialect, now: now), oneByOne = try Self.store(dialect, now: now)
            return (batched, oneByOne)
        }

        let batchResults = try await onThread { try batched.push(changes, device: "laptop").results }
        let singleResults = try await onThread { try changes.flatMap { try oneByOne.push([$0], device: "laptop").results } }
        #expect(batchResults == singleResults)
        // The batch really holds every kind of case the windows must get right.
        #expect(batchResults.contains { $0.code == .changeIDReused })
        #expect(batchResults.contains { $0.status == .conflict })
        #expect(batchResults.contains { $0.status == .superseded })
        #expect(batchResults.contains { $0.code == .unknownColumn })
        let (batchConflicts, singleConflicts) = try await onThread { (try Self.conflicts(of: batched), try Self.conflicts(of: oneByOne)) }
        #expect(batchConflicts == singleConflicts)
        #expect(batchConflicts.contains { $0.hasPrefix("duplicate") })

        // History entries group a push's changes per row, so only their number differs: one push or 1,100.
        var batchedCounts = try await onThread { try batched.inspection.counts() }
        var singleCounts = try await onThread { try oneByOne.inspection.counts() }
        #expect(batchedCounts.removeValue(forKey: "history") ?? 0 < singleCounts.removeValue(forKey: "history") ?? 0)
        #expect(batchedCounts == singleCounts)
        for (table, row) in Set(changes.map { [$0.table, $0.row] }).sorted(by: { $0.lexicographicallyPrecedes($1) }).map({ ($0[0], $0[1]) }) {
            let (left, right) = try await onThread { (try Self.state(of: batched, table, row), try Self.state(of: oneByOne, table, row)) }
            #expect(left == right, "\(table) \(row)")
        }

        // The same batch again: every change id is known now, so every answer repeats and nothing is stored.
        let again = try await onThread { try batched.push(changes, device: "laptop").results }
        #expect(again == batchResults)
        #expect(try await onThread { try batched.inspection.counts() }.filter { $0.key != "history" } == batchedCounts)
    }

    /// A device's ids ascend (`<node>-<zero-padded counter>`), so the store needs to look up only ids
    /// at or below its node's mark (decision 0018). A retry that overlaps an earlier push must still find them.
    @Test(arguments: [StoreDialect.sqlite, .postgresql])
    func anAscendingBatchOverlappingAnEarlierPushAnswersWithTheFirstResults(dialect: StoreDialect) async throws {
        let node = NodeID.random()
        let rows = (0..<240).map { _ in UUID().uuidString.lowercased() }
        var tick = (Self.wallMilliseconds - 10_000) << 16
        let changes = (0..<1_200).map { i -> Change in
            tick += 1
            return Change(id: "\(node)-" + String(repeating: "0", count: 12 - String(i).count) + String(i), table: "cases",
                          row: rows[i / 5], column: ["team", "status", "question", "contact_person", "safety_risk"][i % 5],
                          value: i % 5 == 4 ? .integer(Int64(i % 2)) : (i % 5 == 1 ? .text("plan") : .text("tekst \(i)")),
                          version: CellVersion(hlc: tick, node: node), base: nil)
        }
        let store = try await onThread { try Self.store(dialect, now: Self.wallMilliseconds + 60_000) }
        let first = try await onThread { try store.push(Array(changes[0..<700]), device: "laptop").results }
        #expect(first.allSatisfy { $0.status == .applied })
        // The answer to the first push was lost; the device sends 300..<700 again with what follows.
        let retry = try await onThread { try store.push(Array(changes[300..<1_200]), device: "laptop").results }
        #expect(Array(retry[0..<400]) == Array(first[300..<700]), "the repeated changes answer with their first results")
        #expect(retry[400...].allSatisfy { $0.status == .applied })
        #expect(try await onThread { try store.inspection.counts()["changes"] } == 1_200, "each change in the history once")
    }

    static let wallMilliseconds = UInt64(Date().timeIntervalSince1970 * 1000)

    static func store(_ dialect: StoreDialect, now: UInt64) throws -> ServerStore {
        let model = try shippedDataModel()
        switch dialect {
        case .sqlite: return try ServerStore(directory: try temporaryDirectory("push-window"), dataModel: model, clock: { Int64(now) })
        case .postgresql: return try ServerStore(postgres: try TestPostgres.freshDatabase("push_window"), dataModel: model, clock: { Int64(now) })
        }
    }

    /// Every conflict record, in the order recorded.
    static func conflicts(of store: ServerStore) throws -> [String] {
        try store.conflicts.list().sorted { $0.id < $1.id }.map {
            "\($0.rule) \($0.id) \($0.table) \($0.row) \($0.column) \($0.winnerValue) \($0.winnerVersion) \($0.loserValue) \($0.loserVersion)"
        }
    }

    /// A row's cells and history, compared between the stores.
    static func state(of store: ServerStore, _ table: String, _ row: String) throws -> [String] {
        let history = try store.history(table: table, row: row).map {
            "history \($0.changeID) \($0.column)=\($0.value) \($0.version) \($0.status) \(String(describing: $0.won))"
        }
        let columns = (store.dataModel.table(named: table)?.columns.map(\.name) ?? []) + [Merge.deletedColumn]
        let cells = try columns.map { "cell \($0)=\(String(describing: try store.inspection.cell(table: table, row: row, column: $0)))" }
        return history.sorted() + cells
    }

    /// Changes from two devices to a few cases and mantelzorg appreciations, in random order, with
    /// everything a window must handle: one cell written many times, concurrent writes (conflicts),
    /// older versions (superseded), deletions and revivals, a unique key shared by two rows, the same
    /// change sent again within a window and across windows, a change id reused for another change,
    /// and invalid changes.
    static func mixedBatch(seed: UInt64, count: Int) -> [Change] {
        var random = SplitMix64(seed: seed)
        let nodes = [NodeID.random(), NodeID.random()]
        let cases = (0..<24).map { _ in UUID().uuidString.lowercased() }
        let appreciations = (0..<8).map { _ in UUID().uuidString.lowercased() }
        let carers = (0..<3).map { _ in UUID().uuidString.lowercased() }
        let residents = (0..<4).map { _ in UUID().uuidString.lowercased() }
        var tick = (wallMilliseconds - 10_000) << 16
        var seen: [CellKey: CellVersion] = [:]
        var newestOfRow: [String: CellVersion] = [:]
        // First, two appreciations for the same carer and year, both still unwritten when the second
        // is checked against the unique key: the check must see the first.
        let shared = [("carer_id", CellValue.text(carers[0])), ("year", .integer(2026))]
        var changes: [Change] = appreciations.prefix(2).flatMap { row in
            shared.map { column, value in
                tick += 2
                return Change(id: "\(nodes[0])-first-\(row)-\(column)", table: "appreciations", row: row, column: column, value: value,
                              version: CellVersion(hlc: tick, node: nodes[0]), base: nil)
            }
        }
        var valid = changes
        for index in 0..<count {
            let roll = random.below(100)
            if roll < 5, let earlier = changes.randomElement(using: &random) {
                changes.append(earlier)  // sent again, unchanged
                continue
            }
            if roll < 7, var earlier = valid.randomElement(using: &random), earlier.column != Merge.deletedColumn {
                earlier.value = .text("reused \(index)")  // the same id for a different change
                earlier.version.hlc += 1
                changes.append(earlier)
                continue
            }
            let node = nodes[random.below(2)]
            tick += 2
            var version = CellVersion(hlc: tick, node: node)
            if random.below(10) == 0 { version.hlc = tick - 2 * UInt64(1 + random.below(200)) + 1 }  // older than what is there
            let id = "\(node)-\(index)"
            let table: String, row: String, column: String, value: CellValue
            if random.below(4) == 0 {
                table = "appreciations"
                row = appreciations[random.below(appreciations.count)]
                switch random.below(3) {
                case 0: (column, value) = ("carer_id", .text(carers[random.below(carers.count)]))
                case 1: (column, value) = ("year", .integer(Int64(2025 + random.below(2))))
                default: (column, value) = ("amount", .real(Double(random.below(500))))
                }
            } else {
                table = "cases"
                row = cases[random.below(cases.count)]
                switch random.below(8) {
                case 0: (column, value) = ("team", .text(["castricum-noord", "heiloo"][random.below(2)]))
                case 1: (column, value) = ("status", .text(["melding", "onderzoek", "plan"][random.below(3)]))
                case 2: (column, value) = ("contact_person", .text("Consulent \(random.below(5))"))
                case 3: (column, value) = ("resident_id", .text(residents[random.below(residents.count)]))
                case 4: (column, value) = ("safety_risk", .integer(Int64(random.below(2))))
                case 5: (column, value) = (Merge.deletedColumn, .integer(random.below(3) == 0 ? 0 : 1))
                case 6: (column, value) = ("no_such_column", .text("x"))  // refused: not in the model
                default: (column, value) = ("question", .text("Vraag \(index)"))
                }
            }
            let key = CellKey(table: table, row: row, column: column)
            // Mostly the writer saw the newest version; sometimes an older one or none (concurrent).
            let saw = column == Merge.deletedColumn ? newestOfRow[table + row] : seen[key]
            let base = random.below(3) == 0 ? nil : saw
            let change = Change(id: id, table: table, row: row, column: column, value: value, version: version, base: base)
            changes.append(change)
            guard column != "no_such_column" else { continue }
            valid.append(change)
            seen[key] = max(seen[key] ?? version, version)
            newestOfRow[table + row] = max(newestOfRow[table + row] ?? version, version)
        }
        return changes
    }
}
