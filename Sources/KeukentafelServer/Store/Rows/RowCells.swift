/// A row's cells by column, as its record holds them: what the push reads, merges into and writes back
/// for every row it changes.
///
/// A row has a few dozen columns at most, so the cells are kept in an array and found by comparing
/// names (most are short enough to be compared as two machine words), not in a dictionary that hashes
/// every name: decoding and re-encoding records was a third of a push in the profile (issue 17). The
/// array stays in the order a record lists its cells (by sequence, then column), so writing the record
/// back needs no sort in the usual case, where a change gives one cell the newest sequence.
struct RowCells: Equatable, Sequence, ExpressibleByDictionaryLiteral {
    typealias Element = (key: String, value: StoredCell)

    /// Column names and their cells, at the same positions: searching the names alone copies nothing.
    private var names: [String] = []
    private var cells: [StoredCell] = []
    /// Whether the cells are in record order; false after a write that does not keep it (then `inRecordOrder` sorts).
    private var ordered = true

    init() {}

    init(dictionaryLiteral elements: (String, StoredCell)...) {
        for (column, cell) in elements { self[column] = cell }
    }

    init(_ cells: [String: StoredCell]) {
        reserveCapacity(cells.count)
        for (column, cell) in cells { self[column] = cell }
    }

    init(minimumCapacity: Int) {
        reserveCapacity(minimumCapacity)
    }

    private mutating func reserveCapacity(_ capacity: Int) {
        names.reserveCapacity(capacity)
        cells.reserveCapacity(capacity)
    }

    var count: Int { names.count }
    var isEmpty: Bool { names.isEmpty }
    var keys: [String] { names }
    var values: [StoredCell] { cells }

    struct Iterator: IteratorProtocol {
        fileprivate let cells: RowCells
        fileprivate var index = 0

        mutating func next() -> Element? {
            guard index < cells.names.count else { return nil }
            defer { index += 1 }
            return (cells.names[index], cells.cells[index])
        }
    }

    /// The cells in the order they are kept (record order unless a write broke it).
    func makeIterator() -> Iterator { Iterator(cells: self) }

    /// Calls `body` for each cell in the order a record lists them: by sequence, then by column.
    func forEachInRecordOrder(_ body: (String, StoredCell) throws -> Void) rethrows {
        if ordered {
            for index in names.indices { try body(names[index], cells[index]) }
        } else {
            for index in names.indices.sorted(by: { precedes($0, $1) }) { try body(names[index], cells[index]) }
        }
    }

    /// The cells in record order (see `forEachInRecordOrder`).
    var inRecordOrder: [Element] {
        var elements: [Element] = []
        elements.reserveCapacity(count)
        forEachInRecordOrder { elements.append(($0, $1)) }
        return elements
    }

    private func position(of column: String) -> Int? {
        names.withUnsafeBufferPointer { names in
            for index in names.indices where names[index] == column { return index }
            return nil
        }
    }

    subscript(column: String) -> StoredCell? {
        get { position(of: column).map { cells[$0] } }
        set {
            guard let index = position(of: column) else {
                guard let newValue else { return }
                if ordered, let last = names.indices.last, !Self.precedes(cells[last], names[last], newValue, column) { ordered = false }
                names.append(column)
                cells.append(newValue)
                return
            }
            guard let newValue else {
                names.remove(at: index)  // the rest keep their order
                cells.remove(at: index)
                return
            }
            let last = names.count - 1
            if ordered, index != last, Self.precedes(cells[last], names[last], newValue, column) {
                // The usual write: the cell takes the newest sequence and moves to the end.
                let name = names.remove(at: index)
                names.append(name)
                cells.remove(at: index)
                cells.append(newValue)
                return
            }
            cells[index] = newValue
            if ordered {
                let afterPrevious = index == 0 || precedes(index - 1, index)
                let beforeNext = index == last || precedes(index, index + 1)
                ordered = afterPrevious && beforeNext
            }
        }
    }

    mutating func removeAll(keepingCapacity: Bool = false) {
        names.removeAll(keepingCapacity: keepingCapacity)
        cells.removeAll(keepingCapacity: keepingCapacity)
        ordered = true
    }

    /// The same cells, whatever the order they were written in.
    static func == (lhs: RowCells, rhs: RowCells) -> Bool {
        lhs.count == rhs.count && lhs.names.indices.allSatisfy { rhs[lhs.names[$0]] == lhs.cells[$0] }
    }

    private func precedes(_ a: Int, _ b: Int) -> Bool {
        Self.precedes(cells[a], names[a], cells[b], names[b])
    }

    private static func precedes(_ a: StoredCell, _ aName: String, _ b: StoredCell, _ bName: String) -> Bool {
        a.sequence < b.sequence || (a.sequence == b.sequence && aName < bName)
    }
}
