/// The address of one cell: which table, which row, which column.
public struct CellKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var table: String
    public var row: String
    public var column: String

    public init(table: String, row: String, column: String) {
        self.table = table
        self.row = row
        self.column = column
    }

    public static func < (lhs: CellKey, rhs: CellKey) -> Bool {
        (lhs.table, lhs.row, lhs.column) < (rhs.table, rhs.row, rhs.column)
    }

    public var description: String { "\(table)/\(row)/\(column)" }
}

/// A cell's value together with the version that wrote it.
public struct VersionedValue: Sendable, Hashable {
    public var value: CellValue
    public var version: CellVersion

    public init(value: CellValue, version: CellVersion) {
        self.value = value
        self.version = version
    }
}

/// What happened to one incoming write when it met the current state of its cell.
public enum WriteOutcome: Sendable, Equatable {
    /// The write became the cell's value; nobody else wrote the cell since the writer last saw it.
    case applied
    /// The exact same version is already there (a retried or re-delivered write): nothing changes.
    case duplicate
    /// A greater version is already there and the write was not concurrent with it (or carried the same
    /// value), so nothing of value is lost.
    case superseded
    /// Someone else wrote the cell after the writer's base: the writes were concurrent. LWW still
    /// decides (`incomingWins`), and the losing value must be kept in a conflict record.
    case conflict(incomingWins: Bool)
}

/// The merge rules of Keukentafel: last-writer-wins per cell, plus concurrency detection.
///
/// Everything here is a pure function of its arguments, so client and server apply exactly the same
/// rules, and the properties that make replicas converge (commutative, associative, idempotent) can
/// be tested exhaustively without I/O.
public enum Merge {
    /// The name of the pseudo-column whose value 1 marks a row as deleted (a tombstone).
    public static let deletedColumn = "_deleted"

    /// The greater of two versioned values. Versions are unique per write, so equal versions with
    /// different values only come from a faulty node; the value order then breaks the tie so that
    /// every replica still agrees.
    public static func winner(_ a: VersionedValue, _ b: VersionedValue) -> VersionedValue {
        if a.version != b.version { return a.version > b.version ? a : b }
        return a.value.totalOrderPrecedes(b.value) ? b : a
    }

    /// The cell after an incoming write: last writer wins.
    public static func merge(_ current: VersionedValue?, _ incoming: VersionedValue) -> VersionedValue {
        guard let current else { return incoming }
        return winner(current, incoming)
    }

    /// Classifies an incoming write against the cell's current state and the version the writer saw
    /// when it wrote (`base`, `nil` when the writer saw no value).
    ///
    /// Two writes are concurrent when the cell changed after the writer's base and the values differ;
    /// equal values are agreement, not a conflict.
    public static func classify(current: VersionedValue?, incoming: VersionedValue, base: CellVersion?) -> WriteOutcome {
        guard let current else { return .applied }
        if current.version == incoming.version, current.value == incoming.value { return .duplicate }
        let incomingWins = winner(current, incoming) == incoming
        let concurrent = current.version != base && current.value != incoming.value
        if concurrent { return .conflict(incomingWins: incomingWins) }
        return incomingWins ? .applied : .superseded
    }

    /// Whether the row is deleted, given its tombstone cell and the newest version among its other cells.
    ///
    /// A row is deleted when its tombstone says 1 and is newer than every other write to the row. An
    /// edit that is newer than the deletion therefore brings the row back (and the deletion becomes a
    /// conflict record), and a restore is simply a newer write. This is a function of the merged cells
    /// alone, so all replicas agree on it.
    public static func isRowDeleted(tombstone: VersionedValue?, newestOtherVersion: CellVersion?) -> Bool {
        guard let tombstone, tombstone.value == .integer(1) else { return false }
        guard let newestOtherVersion else { return true }
        return tombstone.version > newestOtherVersion
    }
}

extension CellValue {
    /// A total order over values, used only to break ties between equal versions.
    func totalOrderPrecedes(_ other: CellValue) -> Bool {
        switch (self, other) {
        case (.null, .null): return false
        case (.null, _): return true
        case (_, .null): return false
        case (.integer(let a), .integer(let b)): return a < b
        case (.integer, _): return true
        case (_, .integer): return false
        case (.real(let a), .real(let b)): return a.bitPattern < b.bitPattern
        case (.real, _): return true
        case (_, .real): return false
        case (.text(let a), .text(let b)): return Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8))
        }
    }
}
