import KeukentafelProtocol

/// The versions of one synced row's cells, as a replica keeps them: one row of `_kt_versions` per
/// synced row, not one row per cell. A pulled row then costs one B-tree entry for its versions
/// instead of one per cell, which makes applying a page about three times cheaper in SQLite
/// (docs/decisions/0014).
///
/// Stored as text, `column=hlc.node;` for each cell with both numbers in lowercase hexadecimal, e.g.
/// `status=18f3a2b4c5d60001.1a3f00112233abcd;_deleted=18f3a2b4c5d60002.1a3f00112233abcd;`.
/// Column names are plain identifiers (lowercase letters, digits, `_`; `DataModel.check`), so `=`,
/// `.` and `;` never occur in them. The capture triggers read and write it through the SQL functions
/// `Replica` registers (`kt_versions_set`, `kt_version_hlc`, …).
struct RowVersions: Equatable, Sendable {
    struct Entry: Equatable, Sendable {
        var column: String
        var version: CellVersion
    }

    private(set) var entries: [Entry] = []

    init() {}

    /// Reads the stored text; a malformed one is an error, never a silently shorter list.
    init(decoding text: String) throws {
        var utf8 = text.utf8[...]
        while !utf8.isEmpty {
            guard let equals = utf8.firstIndex(of: UInt8(ascii: "=")),
                  let dot = utf8[equals...].firstIndex(of: UInt8(ascii: ".")),
                  let end = utf8[dot...].firstIndex(of: UInt8(ascii: ";")),
                  let hlc = Self.parseHex(utf8[utf8.index(after: equals)..<dot]),
                  let rawNode = Self.parseHex(utf8[utf8.index(after: dot)..<end]),
                  let node = NodeID(rawValue: rawNode), equals != utf8.startIndex
            else { throw RowVersionsError(text: text) }
            entries.append(Entry(column: String(decoding: utf8[..<equals], as: UTF8.self), version: CellVersion(hlc: hlc, node: node)))
            utf8 = utf8[utf8.index(after: end)...]
        }
    }

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }

    subscript(column: String) -> CellVersion? {
        entries.first { $0.column == column }?.version
    }

    /// Sets the version of a cell, replacing the one it had.
    mutating func set(_ column: String, _ version: CellVersion) {
        if let index = entries.firstIndex(where: { $0.column == column }) {
            entries[index].version = version
        } else {
            entries.append(Entry(column: column, version: version))
        }
    }

    /// The newest version of a cell other than the tombstone: what a deletion has to be newer than.
    var newestOtherThanTombstone: CellVersion? {
        entries.lazy.filter { $0.column != Merge.deletedColumn }.map(\.version).max()
    }

    var encoded: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(entries.count * 48)
        for entry in entries {
            bytes.append(contentsOf: entry.column.utf8)
            bytes.append(UInt8(ascii: "="))
            Self.appendHex(entry.version.hlc, to: &bytes)
            bytes.append(UInt8(ascii: "."))
            Self.appendHex(entry.version.node.rawValue, to: &bytes)
            bytes.append(UInt8(ascii: ";"))
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static let digits = Array("0123456789abcdef".utf8)

    private static func appendHex(_ value: UInt64, to bytes: inout [UInt8]) {
        guard value != 0 else { return bytes.append(UInt8(ascii: "0")) }
        var shift = (63 - value.leadingZeroBitCount) / 4 * 4
        while shift >= 0 {
            bytes.append(digits[Int((value >> UInt64(shift)) & 0xF)])
            shift -= 4
        }
    }

    private static func parseHex(_ bytes: Substring.UTF8View) -> UInt64? {
        guard !bytes.isEmpty, bytes.count <= 16 else { return nil }
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
}

struct RowVersionsError: Error, CustomStringConvertible {
    var text: String
    var description: String { "keukentafel: damaged cell versions in _kt_versions: '\(text.prefix(120))'" }
}
