import KeukentafelProtocol

/// One accepted change as the history keeps it: everything a retry's answer and `ktd admin history`
/// need. A history entry holds the changes one push made to one row (decision 0018).
struct RecordedChange: Equatable {
    var id: String
    var column: String
    var value: CellValue
    var version: CellVersion
    var base: CellVersion?
    var status: ChangeStatus
    var won: Bool?
    var conflict: Int64?

    /// The answer to `change` pushed again: its first result, or a refusal if the id was used for
    /// another change. `row`: the row whose history holds this one.
    func result(for change: Change, row: String) -> ChangeResult {
        guard row == change.row, column == change.column, version == change.version else {
            return ChangeResult(id: change.id, status: .rejected, code: .changeIDReused,
                                message: "change id '\(change.id)' was already used for a different change")
        }
        return ChangeResult(id: change.id, status: status, won: won, conflict: conflict)
    }
}

/// The text of a history entry's changes: a JSON array with one array per change,
/// `[id, column, value, hlc, node, base_hlc, base_node, status, won, conflict]`, numbers as the
/// store's signed 64-bit integers. JSON so that SQL (SQLite's `json_each`, PostgreSQL's `jsonb`) can
/// read it too; written and read by the feed's own coder, which keeps integers and reals apart.
enum HistoryCoding {
    static func encode(_ changes: some Sequence<RecordedChange>, capacity: Int = 256) -> String {
        var writer = JSONWriter(capacity: capacity)
        write(changes, to: &writer)
        return String(decoding: writer.bytes, as: UTF8.self)
    }

    /// Appends the entry's text for `changes` to `writer` (the push path reuses one writer per flush).
    static func write(_ changes: some Sequence<RecordedChange>, to writer: inout JSONWriter) {
        writer.byte(UInt8(ascii: "["))
        var first = true
        for change in changes {
            if !first { writer.byte(UInt8(ascii: ",")) }
            first = false
            append(change, to: &writer)
        }
        writer.byte(UInt8(ascii: "]"))
    }

    static func append(_ change: RecordedChange, to writer: inout JSONWriter) {
        writer.byte(UInt8(ascii: "["))
        writer.string(change.id)
        writer.byte(UInt8(ascii: ","))
        writer.string(change.column)
        writer.byte(UInt8(ascii: ","))
        writer.value(change.value)
        writer.byte(UInt8(ascii: ","))
        writer.integer(Int64(bitPattern: change.version.hlc))
        writer.byte(UInt8(ascii: ","))
        writer.integer(Int64(bitPattern: change.version.node.rawValue))
        if let base = change.base {
            writer.byte(UInt8(ascii: ","))
            writer.integer(Int64(bitPattern: base.hlc))
            writer.byte(UInt8(ascii: ","))
            writer.integer(Int64(bitPattern: base.node.rawValue))
        } else {
            writer.raw(",null,null")
        }
        writer.byte(UInt8(ascii: ","))
        writer.string(change.status.rawValue)
        writer.byte(UInt8(ascii: ","))
        if let won = change.won { writer.raw(won ? "1" : "0") } else { writer.raw("null") }
        writer.byte(UInt8(ascii: ","))
        if let conflict = change.conflict { writer.integer(conflict) } else { writer.raw("null") }
        writer.byte(UInt8(ascii: "]"))
    }

    /// The changes of one entry; a text that is not what `encode` wrote is an error, never fewer changes.
    static func decode(_ text: String) throws -> [RecordedChange] {
        var text = text
        return try text.withUTF8 { bytes in
            var reader = JSONReader(UnsafeRawBufferPointer(bytes))
            var changes: [RecordedChange] = []
            do {
                try reader.array { reader in
                    var fields: [CellValue] = []
                    fields.reserveCapacity(10)
                    try reader.array { reader in fields.append(try reader.cellValue()) }
                    guard fields.count == 10, case .text(let id) = fields[0], case .text(let column) = fields[1],
                          let version = CellVersion(hlc: fields[3], node: fields[4]),
                          case .text(let statusText) = fields[7], let status = ChangeStatus(rawValue: statusText) else {
                        throw StoreError.corrupt("a history entry's change is not [id, column, value, hlc, node, base_hlc, base_node, status, won, conflict]")
                    }
                    changes.append(RecordedChange(id: id, column: column, value: fields[2], version: version,
                                                  base: CellVersion(hlc: fields[5], node: fields[6]), status: status,
                                                  won: fields[8].int64.map { $0 != 0 }, conflict: fields[9].int64))
                }
                try reader.end()
            } catch let error as JSONReader.Error {
                throw StoreError.corrupt("a history entry is not valid: \(error)")
            }
            return changes
        }
    }
}
