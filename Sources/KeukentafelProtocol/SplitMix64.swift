/// A small, fast, deterministic random number generator (SplitMix64): the same seed gives the same
/// sequence on every machine, for generated test histories and synthetic demo populations.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in `0..<n`.
    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

extension DataModel {
    /// Reads a value typed by a person (`--value` on the command line) as the column's type expects.
    public func value(fromText text: String, table: String, column: String) throws -> CellValue {
        switch self.table(named: table)?.column(named: column)?.type {
        case .integer?, .boolean?:
            guard let number = Int64(text) else { throw DataModelError(description: "\(table).\(column) takes a whole number") }
            return .integer(number)
        case .real?:
            guard let number = Double(text), number.isFinite else { throw DataModelError(description: "\(table).\(column) takes a number") }
            return .real(number)
        default:
            return .text(text)
        }
    }
}
