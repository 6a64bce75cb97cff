import KeukentafelProtocol
@testable import KeukentafelServer
import Testing

/// A row's cells as the push keeps them (`RowCells`): found by column like a dictionary's, and always
/// listed in record order (by sequence, then column), however they were written.
@Suite struct RowCellsTests {
    static func cell(_ sequence: Int64, _ value: Int64 = 0) -> StoredCell {
        StoredCell(value: VersionedValue(value: .integer(value), version: CellVersion(hlc: UInt64(sequence), node: NodeID(rawValue: 9)!)),
                   device: nil, sequence: sequence)
    }

    @Test("random writes, overwrites and removals agree with a dictionary, and the record order is always by sequence, then column")
    func agreesWithADictionary() {
        var generator = SystemRandomNumberGenerator()
        let columns = ["a", "b", "status", "contact_person", "a_column_name_longer_than_sixteen", "_deleted"]
        for _ in 0..<300 {
            var cells = RowCells()
            var model: [String: StoredCell] = [:]
            for step in 0..<Int.random(in: 1...40, using: &generator) {
                let column = columns.randomElement(using: &generator)!
                if Int.random(in: 0..<6, using: &generator) == 0 {
                    cells[column] = nil
                    model[column] = nil
                } else {
                    // Mostly the newest sequence (a push's write); sometimes an older or an equal one (migrations, rescoping).
                    let sequence = Bool.random(using: &generator) ? Int64(100 + step) : Int64.random(in: 0...5, using: &generator)
                    cells[column] = Self.cell(sequence, Int64(step))
                    model[column] = Self.cell(sequence, Int64(step))
                }
                #expect(cells.count == model.count)
                for column in columns { #expect(cells[column] == model[column]) }
                let expected = model.sorted { ($0.value.sequence, $0.key) < ($1.value.sequence, $1.key) }
                #expect(cells.inRecordOrder.map(\.key) == expected.map(\.key))
                #expect(cells == RowCells(model))
            }
        }
    }

    @Test("equal cells are equal in any order; a different value, a missing or an extra cell is not")
    func equalityIgnoresOrder() {
        let one: RowCells = ["a": Self.cell(1), "b": Self.cell(2)]
        let other: RowCells = ["b": Self.cell(2), "a": Self.cell(1)]
        #expect(one == other)
        #expect(one != ["a": Self.cell(1), "b": Self.cell(2, 5)])
        #expect(one != ["a": Self.cell(1)])
        #expect(one != ["a": Self.cell(1), "b": Self.cell(2), "c": Self.cell(3)])
    }

    @Test("a record written from cells in any order decodes to the same cells, listed by sequence")
    func recordsAreWrittenInRecordOrder() throws {
        var cells: RowCells = ["z": Self.cell(5), "y": Self.cell(1), "x": Self.cell(3)]
        cells["y"] = Self.cell(9)  // the usual write: moves to the end
        cells["x"] = Self.cell(0)  // an older sequence: out of order until written
        let bytes = RowCoding.encode(cells, columns: .none, devices: .none)
        var order: [String] = []
        try bytes.withUnsafeBytes { try RowCoding.forEachCell(in: $0, columns: .fixed(.none), devices: .fixed(.none)) { column, _ in order.append(column) } }
        #expect(order == ["x", "z", "y"])
        #expect(try RowCoding.decode(bytes, columns: .fixed(.none), devices: .fixed(.none)) == cells)
    }
}
