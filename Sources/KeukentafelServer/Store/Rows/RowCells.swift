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

    private var entries: [Element] = []
    /// Whether `entries` is in record order; false after a write that does not keep it (then `inRecordOrder` sorts).
    private var ordered = true

    init() {}

    init(dictionaryLiteral elements: (String, StoredCell)...) {
        for (column, cell) in elements { self[column] = cell }
    }

    init(_ cells: [String: StoredCell]) {
        entries.reserveCapacity(cells.count)
        for (column, cell) in cells { self[column] = cell }
    }

    init(minimumCapacity: Int) {
        entries.reserveCapacity(minimumCapacity)
    }

    var count: Int { entries.count }
    var isEmpty: Bool { entries.isEmpty }
    var keys: [String] { entries.map(\.key) }
    var values: [StoredCell] { entries.map(\.value) }

    func makeIterator() -> IndexingIterator<[Element]> { entries.makeIterator() }

    /// The cells in the order a record lists them: by sequence, then by column.
    var inRecordOrder: [Element] { ordered ? entries : entries.sorted(by: Self.precedes) }

    subscript(column: String) -> StoredCell? {
        get {
            for entry in entries where entry.key == column { return entry.value }
            return nil
        }
        set {
            guard let index = entries.firstIndex(where: { $0.key == column }) else {
                guard let newValue else { return }
                let entry = (column, newValue)
                if ordered, let last = entries.last, !Self.precedes(last, entry) { ordered = false }
                entries.append(entry)
                return
            }
            guard let newValue else {
                entries.remove(at: index)  // the rest keep their order
                return
            }
            let entry = (column, newValue)
            if ordered, let last = entries.last, index != entries.count - 1, Self.precedes(last, entry) {
                // The usual write: the cell takes the newest sequence and moves to the end.
                entries.remove(at: index)
                entries.append(entry)
                return
            }
            entries[index] = entry
            if ordered {
                let afterPrevious = index == 0 || Self.precedes(entries[index - 1], entry)
                let beforeNext = index == entries.count - 1 || Self.precedes(entry, entries[index + 1])
                ordered = afterPrevious && beforeNext
            }
        }
    }

    mutating func removeAll(keepingCapacity: Bool = false) {
        entries.removeAll(keepingCapacity: keepingCapacity)
        ordered = true
    }

    /// The same cells, whatever the order they were written in.
    static func == (lhs: RowCells, rhs: RowCells) -> Bool {
        lhs.count == rhs.count && lhs.entries.allSatisfy { rhs[$0.key] == $0.value }
    }

    private static func precedes(_ a: Element, _ b: Element) -> Bool {
        a.value.sequence < b.value.sequence || (a.value.sequence == b.value.sequence && a.key < b.key)
    }
}
