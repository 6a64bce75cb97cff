import KeukentafelProtocol

/// The bytes of a row's record in `records` (decision 0020; binary since decision 0031): what the
/// push decodes and re-encodes for every row it changes, and the feed decodes for every row it sends,
/// so it is made to be read fast and stored small.
///
///     format        1 byte, 3 (2: columns by name only; still read)
///     devices       count, then each: its number (`DeviceNumbers`); or 0, length, UTF-8
///                   (the devices that wrote the cells; format 2: length, UTF-8)
///     nodes         count, then each: 8 bytes little-endian (the nodes of the cells' versions)
///     cells         count, then each, in sequence order:
///       column      its number in `ColumnNames`; or 0, length, UTF-8 (format 2: length, UTF-8)
///       value       tag (0 null, 1 integer, 2 real, 3 text), then zigzag integer | 8 bytes | length, UTF-8
///       hlc         zigzag difference to the previous cell's (the first: to 0)
///       node        index into nodes
///       sequence    difference to the previous cell's (the first: the sequence itself)
///       device      index into devices + 1, or 0 for none
///
/// Counts, lengths, indexes and differences are unsigned LEB128 varints. A row's cells are mostly
/// written together by one device, so their versions differ by little and each costs a few bytes.
enum RowCoding {
    static let format: UInt8 = 3
    /// The format before column numbers (decision 0031), which stores written before 0034 hold.
    static let formatWithNames: UInt8 = 2

    /// Appends the record of `cells` to `bytes`, naming columns by their numbers in `columns` and
    /// devices by theirs in `devices`.
    static func write(_ cells: RowCells, columns: Numbering, devices deviceNumbers: Numbering, to bytes: inout [UInt8]) {
        var devices: [String] = []
        var nodes: [UInt64] = []
        cells.forEachInRecordOrder { _, cell in
            if let device = cell.device, !devices.contains(device) { devices.append(device) }
            if !nodes.contains(cell.version.node.rawValue) { nodes.append(cell.version.node.rawValue) }
        }
        bytes.append(format)
        StoredBytes.appendVarint(UInt64(devices.count), to: &bytes)
        for device in devices { StoredBytes.appendName(device, deviceNumbers, to: &bytes) }
        StoredBytes.appendVarint(UInt64(nodes.count), to: &bytes)
        for node in nodes { StoredBytes.appendFixed64(node, to: &bytes) }
        StoredBytes.appendVarint(UInt64(cells.count), to: &bytes)
        var hlc: UInt64 = 0
        var sequence: Int64 = 0
        cells.forEachInRecordOrder { column, cell in
            StoredBytes.appendName(column, columns, to: &bytes)
            StoredBytes.appendValue(cell.value.value, to: &bytes)
            StoredBytes.appendSigned(Int64(bitPattern: cell.version.hlc &- hlc), to: &bytes)
            hlc = cell.version.hlc
            StoredBytes.appendVarint(UInt64(nodes.firstIndex(of: cell.version.node.rawValue) ?? 0), to: &bytes)
            StoredBytes.appendVarint(UInt64(bitPattern: cell.sequence &- sequence), to: &bytes)
            sequence = cell.sequence
            StoredBytes.appendVarint(UInt64(cell.device.flatMap { devices.firstIndex(of: $0) }.map { $0 + 1 } ?? 0), to: &bytes)
        }
    }

    static func encode(_ cells: RowCells, columns: Numbering, devices: Numbering) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32 + cells.count * 32)
        write(cells, columns: columns, devices: devices, to: &bytes)
        return bytes
    }

    /// Calls `cell` for each cell of a record, in sequence order. Bytes that are not what `write`
    /// wrote are an error, never fewer cells.
    static func forEachCell(in bytes: UnsafeRawBufferPointer, columns names: NumberedNames, devices deviceNumbers: NumberedNames,
                            _ cell: (String, StoredCell) throws -> Void) throws {
        var reader = StoredBytes.Reader(bytes, what: "a row's record")
        let recordFormat = try reader.byte()
        guard recordFormat == format || recordFormat == formatWithNames else { throw reader.corrupt("is not in a format this version reads") }
        let numbered = recordFormat == format
        var knownColumns = names.current
        let deviceCount = try reader.count()
        var devices: [String] = []
        devices.reserveCapacity(deviceCount)
        if deviceCount > 0 {
            var knownDevices = deviceNumbers.current
            for _ in 0..<deviceCount {
                devices.append(numbered ? try reader.name(&knownDevices, deviceNumbers, kind: "device") : try reader.string())
            }
        }
        let nodeCount = try reader.count()
        var nodes: [NodeID] = []
        nodes.reserveCapacity(nodeCount)
        for _ in 0..<nodeCount { nodes.append(try reader.node()) }
        let cellCount = try reader.count()
        var hlc: UInt64 = 0
        var sequence: Int64 = 0
        for _ in 0..<cellCount {
            let column = numbered ? try reader.name(&knownColumns, names, kind: "column") : try reader.string()
            let value = try reader.value()
            hlc = hlc &+ UInt64(bitPattern: try reader.signed())
            let nodeIndex = try reader.count()
            guard nodeIndex < nodes.count else { throw reader.corrupt("has a cell whose node index names no node") }
            sequence = sequence &+ Int64(bitPattern: try reader.varint())
            let deviceIndex = try reader.count()
            guard deviceIndex <= devices.count else { throw reader.corrupt("has a cell whose device index names no device") }
            try cell(column, StoredCell(value: VersionedValue(value: value, version: CellVersion(hlc: hlc, node: nodes[nodeIndex])),
                                        device: deviceIndex == 0 ? nil : devices[deviceIndex - 1], sequence: sequence))
        }
        guard reader.isAtEnd else { throw reader.corrupt("has bytes after its last cell") }
    }

    /// The cells of a record by column.
    static func decode(_ bytes: UnsafeRawBufferPointer, columns: NumberedNames, devices: NumberedNames) throws -> RowCells {
        var cells = RowCells(minimumCapacity: 16)
        try forEachCell(in: bytes, columns: columns, devices: devices) { column, cell in cells[column] = cell }
        return cells
    }

    static func decode(_ bytes: [UInt8], columns: NumberedNames, devices: NumberedNames) throws -> RowCells {
        try bytes.withUnsafeBytes { try decode($0, columns: columns, devices: devices) }
    }
}
