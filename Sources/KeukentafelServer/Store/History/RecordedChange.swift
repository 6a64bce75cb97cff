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

/// The bytes of a history entry's changes (decision 0031; JSON text before it, still read):
///
///     format        1 byte, 3 (2: columns by name only; still read)
///     changes       count, then each:
///       id          1, digits, counter: `<node of the version, 16 hex>-<counter in that many digits>`
///                   (a replica's own ids); or 0, length, UTF-8
///       column      its number in `ColumnNames`; or 0, length, UTF-8 (format 2: length, UTF-8)
///       value       as in a record (`StoredBytes.appendValue`)
///       hlc         zigzag difference to the previous change's (the first: to 0)
///       node        0: the previous change's; 1, then 8 bytes little-endian
///       base        0: none; 1, zigzag difference to the hlc, the version's node; 2, the same, 8 bytes of node
///       status      index into `ChangeStatus.allCases`
///       won         0 unknown, 1 lost, 2 won
///       conflict    0 none; 1, zigzag id
///
/// Numbers are LEB128 varints (`StoredBytes`). The changes of one entry are one push's to one row, so
/// they share a node and nearly a clock, and each costs little more than its column and value.
enum HistoryCoding {
    static let format: UInt8 = 3
    /// The format before column numbers (decision 0031), which stores written before 0034 hold.
    static let formatWithNames: UInt8 = 2

    static func encode<C: Collection<RecordedChange>>(_ changes: C, columns: Numbering) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16 + changes.count * 48)
        write(changes, columns: columns, to: &bytes)
        return bytes
    }

    /// Appends the entry's bytes for `changes` to `bytes` (the push path reuses one buffer per flush),
    /// naming columns by their numbers in `columns`.
    static func write<C: Collection<RecordedChange>>(_ changes: C, columns: Numbering, to bytes: inout [UInt8]) {
        bytes.append(format)
        StoredBytes.appendVarint(UInt64(changes.count), to: &bytes)
        var hlc: UInt64 = 0
        var node: NodeID?
        for change in changes {
            if let counter = ChangeMarks.replicaCounter(id: change.id, node: change.version.node) {
                bytes.append(1)
                bytes.append(UInt8(counter.digits))
                StoredBytes.appendVarint(UInt64(counter.value), to: &bytes)
            } else {
                bytes.append(0)
                StoredBytes.appendString(change.id, to: &bytes)
            }
            StoredBytes.appendName(change.column, columns, to: &bytes)
            StoredBytes.appendValue(change.value, to: &bytes)
            StoredBytes.appendSigned(Int64(bitPattern: change.version.hlc &- hlc), to: &bytes)
            hlc = change.version.hlc
            if change.version.node == node {
                bytes.append(0)
            } else {
                bytes.append(1)
                StoredBytes.appendFixed64(change.version.node.rawValue, to: &bytes)
                node = change.version.node
            }
            if let base = change.base {
                let sameNode = base.node == change.version.node
                bytes.append(sameNode ? 1 : 2)
                StoredBytes.appendSigned(Int64(bitPattern: base.hlc &- change.version.hlc), to: &bytes)
                if !sameNode { StoredBytes.appendFixed64(base.node.rawValue, to: &bytes) }
            } else {
                bytes.append(0)
            }
            bytes.append(UInt8(ChangeStatus.allCases.firstIndex(of: change.status) ?? 0))
            bytes.append(change.won.map { $0 ? 2 : 1 } ?? 0)
            if let conflict = change.conflict {
                bytes.append(1)
                StoredBytes.appendSigned(conflict, to: &bytes)
            } else {
                bytes.append(0)
            }
        }
    }

    /// The changes of one entry; bytes that are not what `write` wrote (or JSON text as releases before
    /// decision 0031 wrote it) are an error, never fewer changes.
    static func decode(_ bytes: UnsafeRawBufferPointer, columns names: NumberedNames) throws -> [RecordedChange] {
        if bytes.first == UInt8(ascii: "[") { return try decodeJSON(String(decoding: bytes, as: UTF8.self)) }
        var reader = StoredBytes.Reader(bytes, what: "a history entry")
        let entryFormat = try reader.byte()
        guard entryFormat == format || entryFormat == formatWithNames else { throw reader.corrupt("is not in a format this version reads") }
        var knownColumns = names.current
        let count = try reader.count()
        var changes: [RecordedChange] = []
        changes.reserveCapacity(count)
        var hlc: UInt64 = 0
        var node: NodeID?
        for _ in 0..<count {
            enum ID { case counter(UInt64, Int), text(String) }
            let id: ID
            switch try reader.byte() {
            case 0: id = .text(try reader.string())
            case 1:
                let digits = Int(try reader.byte())
                guard digits <= 18 else { throw reader.corrupt("has a change id of too many digits") }
                id = .counter(try reader.varint(), digits)
            default: throw reader.corrupt("has a change id of an unknown kind")
            }
            let column = entryFormat == format ? try reader.name(&knownColumns, names, kind: "column") : try reader.string()
            let value = try reader.value()
            hlc = hlc &+ UInt64(bitPattern: try reader.signed())
            switch try reader.byte() {
            case 0: guard node != nil else { throw reader.corrupt("has a change without a node") }
            case 1: node = try reader.node()
            default: throw reader.corrupt("has a node of an unknown kind")
            }
            let version = CellVersion(hlc: hlc, node: node!)
            var base: CellVersion?
            switch try reader.byte() {
            case 0: base = nil
            case 1: base = CellVersion(hlc: hlc &+ UInt64(bitPattern: try reader.signed()), node: version.node)
            case 2:
                let baseHLC = hlc &+ UInt64(bitPattern: try reader.signed())
                base = CellVersion(hlc: baseHLC, node: try reader.node())
            default: throw reader.corrupt("has a base of an unknown kind")
            }
            let statusIndex = Int(try reader.byte())
            guard statusIndex < ChangeStatus.allCases.count else { throw reader.corrupt("has an unknown status") }
            let won: Bool?
            switch try reader.byte() {
            case 0: won = nil
            case 1: won = false
            case 2: won = true
            default: throw reader.corrupt("has an unknown outcome")
            }
            var conflict: Int64?
            switch try reader.byte() {
            case 0: conflict = nil
            case 1: conflict = try reader.signed()
            default: throw reader.corrupt("has a conflict of an unknown kind")
            }
            let idText: String
            switch id {
            case .text(let text): idText = text
            case .counter(let value, let digits):
                let number = String(value)
                guard number.utf8.count <= digits else { throw reader.corrupt("has a change id counter longer than its digits") }
                idText = version.node.description + "-" + String(repeating: "0", count: digits - number.utf8.count) + number
            }
            changes.append(RecordedChange(id: idText, column: column, value: value, version: version, base: base,
                                          status: ChangeStatus.allCases[statusIndex], won: won, conflict: conflict))
        }
        guard reader.isAtEnd else { throw reader.corrupt("has bytes after its last change") }
        return changes
    }

    static func decode(_ bytes: [UInt8], columns: NumberedNames) throws -> [RecordedChange] {
        try bytes.withUnsafeBytes { try decode($0, columns: columns) }
    }

    /// An entry as JSON text, as releases before decision 0031 wrote it: one array per change,
    /// `[id, column, value, hlc, node, base_hlc, base_node, status, won, conflict]`.
    static func decodeJSON(_ text: String) throws -> [RecordedChange] {
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
