/// The version of one cell: an HLC timestamp and the id of the node (replica) that wrote it.
///
/// Versions are totally ordered: first by timestamp, then by node id. Every replica therefore picks
/// the same winner for a cell without talking to anyone.
///
/// On the wire a version is the string `"<16 hex digits of hlc>-<16 hex digits of node>"`. Both parts
/// are fixed width, so comparing the strings compares the versions, and the values survive JSON
/// parsers that hold numbers as doubles.
public struct CellVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var hlc: UInt64
    public var node: NodeID

    public init(hlc: UInt64, node: NodeID) {
        self.hlc = hlc
        self.node = node
    }

    public static func < (lhs: CellVersion, rhs: CellVersion) -> Bool {
        (lhs.hlc, lhs.node.rawValue) < (rhs.hlc, rhs.node.rawValue)
    }

    /// The wire form: `<16 hex digits of hlc>-<16 hex digits of node>`.
    public var description: String {
        var bytes: [UInt8] = []
        appendWireForm(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the wire form to UTF-8 bytes without making a string (the hot paths write millions).
    public func appendWireForm(to bytes: inout [UInt8]) {
        bytes.reserveCapacity(bytes.count + 33)
        appendHex16(hlc, to: &bytes)
        bytes.append(UInt8(ascii: "-"))
        appendHex16(node.rawValue, to: &bytes)
    }

    /// Parses the wire form; `nil` when the text is not exactly two 16-digit lowercase hex numbers.
    public init?(_ text: String) {
        self.init(wireForm: Array(text.utf8)[...])
    }

    /// Parses the wire form from UTF-8 bytes.
    public init?(wireForm utf8: ArraySlice<UInt8>) {
        guard let version = utf8.withUnsafeBytes({ CellVersion(wireForm: $0) }) else { return nil }
        self = version
    }

    /// Parses the wire form from UTF-8 bytes where they lie (a page being decoded).
    init?(wireForm utf8: UnsafeRawBufferPointer) {
        guard utf8.count == 33, utf8[16] == UInt8(ascii: "-"),
              let hlc = parseHex16(utf8.prefix(16)), let node = parseHex16(utf8.suffix(16)),
              let nodeID = NodeID(rawValue: node)
        else { return nil }
        self.init(hlc: hlc, node: nodeID)
    }

    /// Wall-clock milliseconds of the timestamp, for display and clock-skew checks.
    public var milliseconds: UInt64 { HybridLogicalClock.milliseconds(of: hlc) }
}

extension CellVersion: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let version = CellVersion(text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "a version is '<16 hex hlc>-<16 hex node>', got '\(text.prefix(40))'")
        }
        self = version
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// The id of a replica (a device's local database, or the server itself).
///
/// 63 bits so that it fits a signed SQLite INTEGER and sorts the same signed or unsigned.
public struct NodeID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let rawValue: UInt64

    /// `nil` for 0 and for values that need the 64th bit.
    public init?(rawValue: UInt64) {
        guard rawValue != 0, rawValue <= UInt64(Int64.max) else { return nil }
        self.rawValue = rawValue
    }

    /// A fresh random node id.
    public static func random() -> NodeID {
        var generator = SystemRandomNumberGenerator()
        while true {
            if let id = NodeID(rawValue: generator.next() & UInt64(Int64.max)) { return id }
        }
    }

    public init?(_ text: String) {
        let utf8 = Array(text.utf8)
        guard utf8.count == 16, let value = parseHex16(utf8[...]) else { return nil }
        self.init(rawValue: value)
    }

    public static func < (lhs: NodeID, rhs: NodeID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { hex16(rawValue) }
}

extension NodeID: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let id = NodeID(text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "a node id is 16 lowercase hex digits")
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

func hex16(_ value: UInt64) -> String {
    var bytes: [UInt8] = []
    appendHex16(value, to: &bytes)
    return String(decoding: bytes, as: UTF8.self)
}

/// Appends `value` as 16 lowercase hex digits. Every cell of every page is sent and stored with two of
/// these: the digits are worked out, not looked up in a global table (whose lazy initialisation and
/// bounds checks were a third of encoding a page), and appended as one 16-byte copy.
func appendHex16(_ value: UInt64, to bytes: inout [UInt8]) {
    var digits: (UInt64, UInt64) = (0, 0)
    withUnsafeMutableBytes(of: &digits) { out in
        for index in 0..<16 {
            let nibble = UInt8(truncatingIfNeeded: value >> UInt64(60 - 4 * index)) & 0xF
            out[index] = nibble < 10 ? nibble &+ UInt8(ascii: "0") : nibble &+ (UInt8(ascii: "a") - 10)
        }
    }
    withUnsafeBytes(of: &digits) { bytes.append(contentsOf: $0) }
}

/// Exactly 16 lowercase hexadecimal digits (the form `appendHex16` writes), or nil.
@inlinable
public func parseHex16<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> UInt64? {
    guard bytes.count == 16 else { return nil }
    var value: UInt64 = 0
    for byte in bytes {
        let digit: UInt8
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
        default: return nil
        }
        value = value << 4 | UInt64(digit)
    }
    return value
}
