import Testing
@testable import KeukentafelProtocol

/// The properties that make replicas converge, hammered with generated histories.
@Suite struct MergeTests {
    static let values: [CellValue] = [.null, .integer(0), .integer(1), .integer(-7), .real(2.5), .text(""), .text("plan"), .text("gesloten")]

    func randomValue(_ random: inout SplitMix64) -> VersionedValue {
        VersionedValue(
            value: Self.values[Int(random.next() % UInt64(Self.values.count))],
            // Few distinct timestamps and nodes, so ties and equal versions happen often.
            version: CellVersion(hlc: random.next() % 6, node: NodeID(rawValue: random.next() % 3 + 1)!))
    }

    @Test func mergeIsCommutativeAssociativeAndIdempotent() {
        var random = SplitMix64(seed: 42)
        for _ in 0..<20_000 {
            let a = randomValue(&random), b = randomValue(&random), c = randomValue(&random)
            #expect(Merge.winner(a, b) == Merge.winner(b, a))
            #expect(Merge.winner(Merge.winner(a, b), c) == Merge.winner(a, Merge.winner(b, c)))
            #expect(Merge.winner(a, a) == a)
            #expect(Merge.merge(Merge.merge(nil, a), a) == a)
        }
    }

    @Test func greaterVersionWins() {
        let node1 = NodeID(rawValue: 1)!, node2 = NodeID(rawValue: 2)!
        let older = VersionedValue(value: .text("old"), version: CellVersion(hlc: 10, node: node2))
        let newer = VersionedValue(value: .text("new"), version: CellVersion(hlc: 11, node: node1))
        #expect(Merge.merge(older, newer) == newer)
        #expect(Merge.merge(newer, older) == newer)
        let tie = VersionedValue(value: .text("tie"), version: CellVersion(hlc: 11, node: node2))
        #expect(Merge.merge(newer, tie) == tie, "on equal timestamps the greater node id wins")
    }

    /// Any set of changes, delivered to any number of replicas in any order with duplicates, leaves
    /// every replica with the same cells and the same deleted rows.
    @Test(arguments: 0..<40 as Range<UInt64>)
    func replicasConvergeWhateverTheDeliveryOrder(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let columns = ["status", "contact_person", Merge.deletedColumn]
        let rows = ["r1", "r2"]
        var history: [(CellKey, VersionedValue)] = []
        var clocks = (1...4).map { _ in HybridLogicalClock() }
        for _ in 0..<(20 + Int(random.next() % 60)) {
            let writer = Int(random.next() % 4)
            let column = columns[Int(random.next() % 3)]
            let key = CellKey(table: "cases", row: rows[Int(random.next() % 2)], column: column)
            let hlc = clocks[writer].tick(wallMilliseconds: 1_000 + random.next() % 50)
            let value: CellValue = column == Merge.deletedColumn ? .integer(Int64(random.next() % 2)) : Self.values[Int(random.next() % 8)]
            history.append((key, VersionedValue(value: value, version: CellVersion(hlc: hlc, node: NodeID(rawValue: UInt64(writer + 1))!))))
        }
        var states: [[CellKey: VersionedValue]] = []
        for _ in 0..<5 {
            var delivery = history + history.filter { _ in random.next() % 3 == 0 }  // duplicates
            delivery.shuffle(using: &random)
            var state: [CellKey: VersionedValue] = [:]
            for (key, incoming) in delivery { state[key] = Merge.merge(state[key], incoming) }
            states.append(state)
        }
        for state in states.dropFirst() { #expect(state == states[0]) }
        for row in rows {
            let deleted = states.map { state in
                Merge.isRowDeleted(
                    tombstone: state[CellKey(table: "cases", row: row, column: Merge.deletedColumn)],
                    newestOtherVersion: state.filter { $0.key.row == row && $0.key.column != Merge.deletedColumn }.map(\.value.version).max())
            }
            #expect(Set(deleted).count == 1)
        }
    }

    @Test func concurrencyIsDetectedAgainstTheBase() {
        let a = NodeID(rawValue: 1)!, b = NodeID(rawValue: 2)!
        let base = VersionedValue(value: .text("melding"), version: CellVersion(hlc: 10, node: a))
        let officeWrite = VersionedValue(value: .text("plan"), version: CellVersion(hlc: 20, node: a))
        let laptopWrite = VersionedValue(value: .text("onderzoek"), version: CellVersion(hlc: 15, node: b))
        // The writer saw the current value: a plain update.
        #expect(Merge.classify(current: base, incoming: officeWrite, base: base.version) == .applied)
        // Someone wrote after the laptop's base and the values differ: a conflict the laptop loses.
        #expect(Merge.classify(current: officeWrite, incoming: laptopWrite, base: base.version) == .conflict(incomingWins: false))
        // Arriving the other way round, the newer write wins the conflict.
        #expect(Merge.classify(current: laptopWrite, incoming: officeWrite, base: base.version) == .conflict(incomingWins: true))
        // Same value written concurrently: agreement, not a conflict.
        let sameValue = VersionedValue(value: .text("plan"), version: CellVersion(hlc: 16, node: b))
        #expect(Merge.classify(current: officeWrite, incoming: sameValue, base: base.version) == .superseded)
        // Re-delivery of what is already there.
        #expect(Merge.classify(current: officeWrite, incoming: officeWrite, base: base.version) == .duplicate)
        // First write to an empty cell.
        #expect(Merge.classify(current: nil, incoming: laptopWrite, base: nil) == .applied)
    }

    @Test func rowDeletionFollowsTheNewestWrite() {
        let n = NodeID(rawValue: 1)!
        let tombstone = VersionedValue(value: .integer(1), version: CellVersion(hlc: 10, node: n))
        #expect(Merge.isRowDeleted(tombstone: tombstone, newestOtherVersion: CellVersion(hlc: 9, node: n)))
        #expect(!Merge.isRowDeleted(tombstone: tombstone, newestOtherVersion: CellVersion(hlc: 11, node: n)))
        #expect(Merge.isRowDeleted(tombstone: tombstone, newestOtherVersion: nil))
        #expect(!Merge.isRowDeleted(tombstone: nil, newestOtherVersion: nil))
        let restored = VersionedValue(value: .integer(0), version: CellVersion(hlc: 12, node: n))
        #expect(!Merge.isRowDeleted(tombstone: restored, newestOtherVersion: nil))
    }
}
