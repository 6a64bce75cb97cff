import KeukentafelProtocol

/// The versions of one synced row's cells, as a replica keeps them: one row of `_kt_versions` per
/// synced row, not one row per cell. A pulled row then costs one B-tree entry for its versions
/// instead of one per cell, which makes applying a page about three times cheaper in SQLite
/// (docs/decisions/0014).
///
/// Stored as text, `column=<version>;` for each cell, the version in its wire form (two 16-digit
/// hexadecimal numbers, hlc and node), e.g. `status=018f3a2b4c5d6000-1a3f00112233abcd;`. Column names
/// are plain identifiers (lowercase letters, digits, `_`; `DataModel.check`), so `=` and `;` never
/// occur in them. The capture triggers read and write it through the SQL functions `Replica`
/// registers (`kt_versions_set`, `kt_version_hlc`, …).
struct RowVersions: Equatable, Sendable {
    struct Entry: Equatable, Sendable {
        var column: String
        var version: CellVersion
    }

    private(set) var entries: [Entry] = []

    init() {}

    /// Reads the stored text; a malformed one is an error, never a silently shorter list.
    init(decoding text: String) throws {
        let utf8 = Array(text.utf8)
        var start = 0
        while start < utf8.count {
            guard let equals = utf8[start...].firstIndex(of: UInt8(ascii: "=")), equals > start,
                  let end = utf8[equals...].firstIndex(of: UInt8(ascii: ";")),
                  let version = CellVersion(wireForm: utf8[(equals + 1)..<end])
            else { throw RowVersionsError(text: text) }
            entries.append(Entry(column: String(decoding: utf8[start..<equals], as: UTF8.self), version: version))
            start = end + 1
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
        bytes.reserveCapacity(entries.count * 50)
        for entry in entries {
            bytes.append(contentsOf: entry.column.utf8)
            bytes.append(UInt8(ascii: "="))
            entry.version.appendWireForm(to: &bytes)
            bytes.append(UInt8(ascii: ";"))
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

struct RowVersionsError: Error, CustomStringConvertible {
    var text: String
    var description: String { "keukentafel: damaged cell versions in _kt_versions: '\(text.prefix(120))'" }
}
