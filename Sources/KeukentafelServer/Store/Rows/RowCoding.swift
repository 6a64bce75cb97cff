import KeukentafelProtocol

/// The bytes of a row's record in `records` (decision 0020; binary since decision 0031): what the
/// push decodes and re-encodes for every row it changes, and the feed decodes for every row it sends,
/// so it is made to be read fast and stored small.
///
///     format        1 byte, 2
///     devices       count, then each: length, UTF-8         (the devices that wrote the cells)
///     nodes         count, then each: 8 bytes little-endian (the nodes of the cells' versions)
///     cells         count, then each, in sequence order:
///       column      length, UTF-8
///       value       tag (0 null, 1 integer, 2 real, 3 text), then zigzag integer | 8 bytes | length, UTF-8
///       hlc         zigzag difference to the previous cell's (the first: to 0)
///       node        index into nodes
///       sequence    difference to the previous cell's (the first: the sequence itself)
///       device      index into devices + 1, or 0 for none
///
/// Counts, lengths, indexes and differences are unsigned LEB128 varints. A row's cells are mostly
/// written together by one device, so their versions differ by little and each costs a few bytes.
enum RowCoding {
    static let format: UInt8 = 2

    /// Appends the record of `cells` to `bytes`.
    static func write(_ cells: [String: StoredCell], to bytes: inout [UInt8]) {
        let ordered = cells.sorted { ($0.value.sequence, $0.key) < ($1.value.sequence, $1.key) }
        var devices: [String] = []
        var nodes: [UInt64] = []
        for (_, cell) in ordered {
            if let device = cell.device, !devices.contains(device) { devices.append(device) }
            if !nodes.contains(cell.version.node.rawValue) { nodes.append(cell.version.node.rawValue) }
        }
        bytes.append(format)
        appendVarint(UInt64(devices.count), to: &bytes)
        for device in devices { appendString(device, to: &bytes) }
        appendVarint(UInt64(nodes.count), to: &bytes)
        for node in nodes {
            for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: node >> UInt64(shift))) }
        }
        appendVarint(UInt64(ordered.count), to: &bytes)
        var hlc: UInt64 = 0
        var sequence: Int64 = 0
        for (column, cell) in ordered {
            appendString(column, to: &bytes)
            switch cell.value.value {
            case .null:
                bytes.append(0)
            case .integer(let v):
                bytes.append(1)
                appendVarint(zigzag(v), to: &bytes)
            case .real(let v):
                bytes.append(2)
                let bits = v.bitPattern
                for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift))) }
            case .text(let v):
                bytes.append(3)
                appendString(v, to: &bytes)
            }
            appendVarint(zigzag(Int64(bitPattern: cell.version.hlc &- hlc)), to: &bytes)
            hlc = cell.version.hlc
            appendVarint(UInt64(nodes.firstIndex(of: cell.version.node.rawValue) ?? 0), to: &bytes)
            appendVarint(UInt64(bitPattern: cell.sequence &- sequence), to: &bytes)
            sequence = cell.sequence
            appendVarint(UInt64(cell.device.flatMap { devices.firstIndex(of: $0) }.map { $0 + 1 } ?? 0), to: &bytes)
        }
    }

    static func encode(_ cells: [String: StoredCell]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32 + cells.count * 32)
        write(cells, to: &bytes)
        return bytes
    }

    /// Calls `cell` for each cell of a record, in sequence order. Bytes that are not what `write`
    /// wrote are an error, never fewer cells.
    static func forEachCell(in bytes: UnsafeRawBufferPointer, _ cell: (String, StoredCell) throws -> Void) throws {
        var reader = Reader(bytes: bytes)
        guard try reader.byte() == format else { throw StoreError.corrupt("a row's record is not in a format this version reads") }
        let deviceCount = try reader.count()
        var devices: [String] = []
        devices.reserveCapacity(deviceCount)
        for _ in 0..<deviceCount { devices.append(try reader.string()) }
        let nodeCount = try reader.count()
        var nodes: [NodeID] = []
        nodes.reserveCapacity(nodeCount)
        for _ in 0..<nodeCount {
            guard let node = NodeID(rawValue: try reader.fixed64()) else { throw StoreError.corrupt("a row's record names an invalid node") }
            nodes.append(node)
        }
        let cellCount = try reader.count()
        var hlc: UInt64 = 0
        var sequence: Int64 = 0
        for _ in 0..<cellCount {
            let column = try reader.string()
            let value: CellValue
            switch try reader.byte() {
            case 0: value = .null
            case 1: value = .integer(unzigzag(try reader.varint()))
            case 2: value = .real(Double(bitPattern: try reader.fixed64()))
            case 3: value = .text(try reader.string())
            default: throw StoreError.corrupt("a row's record holds a value of an unknown kind")
            }
            hlc = hlc &+ UInt64(bitPattern: unzigzag(try reader.varint()))
            let nodeIndex = try reader.count()
            guard nodeIndex < nodes.count else { throw StoreError.corrupt("a cell's node index names no node") }
            sequence = sequence &+ Int64(bitPattern: try reader.varint())
            let deviceIndex = try reader.count()
            guard deviceIndex <= devices.count else { throw StoreError.corrupt("a cell's device index names no device") }
            try cell(column, StoredCell(value: VersionedValue(value: value, version: CellVersion(hlc: hlc, node: nodes[nodeIndex])),
                                        device: deviceIndex == 0 ? nil : devices[deviceIndex - 1], sequence: sequence))
        }
        guard reader.isAtEnd else { throw StoreError.corrupt("a row's record has bytes after its last cell") }
    }

    /// The cells of a record by column.
    static func decode(_ bytes: UnsafeRawBufferPointer) throws -> [String: StoredCell] {
        var cells: [String: StoredCell] = [:]
        try forEachCell(in: bytes) { column, cell in cells[column] = cell }
        return cells
    }

    static func decode(_ bytes: [UInt8]) throws -> [String: StoredCell] {
        try bytes.withUnsafeBytes { try decode($0) }
    }

    // MARK: - Bytes

    private static func zigzag(_ v: Int64) -> UInt64 { UInt64(bitPattern: (v << 1) ^ (v >> 63)) }
    private static func unzigzag(_ v: UInt64) -> Int64 { Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1) }

    private static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    private static func appendString(_ string: String, to bytes: inout [UInt8]) {
        var string = string
        string.withUTF8 { utf8 in
            appendVarint(UInt64(utf8.count), to: &bytes)
            bytes.append(contentsOf: utf8)
        }
    }

    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var at = 0

        init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        var isAtEnd: Bool { at == bytes.count }

        mutating func byte() throws -> UInt8 {
            guard at < bytes.count else { throw truncated() }
            defer { at += 1 }
            return bytes[at]
        }

        mutating func varint() throws -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                let b = try byte()
                guard shift < 64 else { throw StoreError.corrupt("a row's record holds a number too long") }
                value |= UInt64(b & 0x7f) << shift
                if b < 0x80 { return value }
                shift += 7
            }
        }

        /// A count, length or index: small enough to be a position in the record.
        mutating func count() throws -> Int {
            let v = try varint()
            guard v <= UInt64(bytes.count) else { throw StoreError.corrupt("a row's record holds a count beyond its length") }
            return Int(v)
        }

        mutating func fixed64() throws -> UInt64 {
            guard bytes.count - at >= 8 else { throw truncated() }
            var v: UInt64 = 0
            for i in 0..<8 { v |= UInt64(bytes[at + i]) << UInt64(8 * i) }
            at += 8
            return v
        }

        mutating func string() throws -> String {
            let length = try count()
            guard bytes.count - at >= length else { throw truncated() }
            defer { at += length }
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[at..<at + length]), as: UTF8.self)
        }

        func truncated() -> StoreError { StoreError.corrupt("a row's record ends in the middle of a cell") }
    }
}
