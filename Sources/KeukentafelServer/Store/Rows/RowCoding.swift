import KeukentafelProtocol

/// The text of a row's record in `records` (decision 0020): a JSON array whose first element lists the
/// devices that wrote the row's cells, then one array per cell,
/// `[column, value, hlc, node, seq, device]`, with `device` an index into that list (or null), in
/// sequence order. JSON, like the history (decision 0018), so SQL can read it too; written and read by
/// the feed's coder, which keeps integers and reals apart.
enum RowCoding {
    /// Appends the record's text for `cells` to `writer`.
    static func write(_ cells: [String: StoredCell], to writer: inout JSONWriter) {
        var devices: [String] = []
        let ordered = cells.sorted { ($0.value.sequence, $0.key) < ($1.value.sequence, $1.key) }
        for (_, cell) in ordered {
            if let device = cell.device, !devices.contains(device) { devices.append(device) }
        }
        writer.byte(UInt8(ascii: "["))
        writer.byte(UInt8(ascii: "["))
        for (index, device) in devices.enumerated() {
            if index > 0 { writer.byte(UInt8(ascii: ",")) }
            writer.string(device)
        }
        writer.byte(UInt8(ascii: "]"))
        for (column, cell) in ordered {
            writer.raw(",[")
            writer.string(column)
            writer.byte(UInt8(ascii: ","))
            writer.value(cell.value.value)
            writer.byte(UInt8(ascii: ","))
            writer.integer(Int64(bitPattern: cell.version.hlc))
            writer.byte(UInt8(ascii: ","))
            writer.integer(Int64(bitPattern: cell.version.node.rawValue))
            writer.byte(UInt8(ascii: ","))
            writer.integer(cell.sequence)
            writer.byte(UInt8(ascii: ","))
            if let device = cell.device, let index = devices.firstIndex(of: device) { writer.integer(Int64(index)) } else { writer.raw("null") }
            writer.byte(UInt8(ascii: "]"))
        }
        writer.byte(UInt8(ascii: "]"))
    }

    static func encode(_ cells: [String: StoredCell]) -> String {
        var writer = JSONWriter(capacity: 64 + cells.count * 64)
        write(cells, to: &writer)
        return String(decoding: writer.bytes, as: UTF8.self)
    }

    /// Calls `cell` for each cell of a record, in sequence order. A text that is not what `write`
    /// wrote is an error, never fewer cells.
    static func forEachCell(in text: String, _ cell: (String, StoredCell) throws -> Void) throws {
        var text = text
        try text.withUTF8 { bytes in
            var reader = JSONReader(UnsafeRawBufferPointer(bytes))
            var devices: [String] = []
            var first = true
            do {
                try reader.array { reader in
                    if first {
                        first = false
                        try reader.array { reader in devices.append(try reader.string()) }
                        return
                    }
                    try reader.expect(UInt8(ascii: "["))
                    let column = try reader.string()
                    try reader.expect(UInt8(ascii: ","))
                    let value = try reader.cellValue()
                    try reader.expect(UInt8(ascii: ","))
                    let hlc = try reader.integer()
                    try reader.expect(UInt8(ascii: ","))
                    let node = try reader.integer()
                    try reader.expect(UInt8(ascii: ","))
                    let sequence = try reader.integer()
                    try reader.expect(UInt8(ascii: ","))
                    var device: String?
                    if try !reader.isNull() {
                        let index = Int(try reader.integer())
                        guard devices.indices.contains(index) else { throw reader.fail("a cell's device index names no device") }
                        device = devices[index]
                    }
                    try reader.expect(UInt8(ascii: "]"))
                    guard let version = CellVersion(hlc: .integer(hlc), node: .integer(node)) else {
                        throw reader.fail("a cell's version is not valid")
                    }
                    try cell(column, StoredCell(value: VersionedValue(value: value, version: version), device: device, sequence: sequence))
                }
                try reader.end()
                if first { throw reader.fail("a record starts with its list of devices") }
            } catch let error as JSONReader.Error {
                throw StoreError.corrupt("a row's record is not valid: \(error)")
            }
        }
    }

    /// The cells of a record by column.
    static func decode(_ text: String) throws -> [String: StoredCell] {
        var cells: [String: StoredCell] = [:]
        try forEachCell(in: text) { column, cell in cells[column] = cell }
        return cells
    }
}
