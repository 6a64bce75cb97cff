import Foundation

/// Why one change cannot be accepted: a stable code and a sentence for people.
public struct ChangeRejection: Error, Sendable, Equatable {
    public var code: ErrorCode
    public var message: String

    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }
}

extension DataModel {
    /// The default maximum length of text without an explicit `maxLength`.
    public static let defaultMaxTextLength = 10_000
    /// The largest attachment of a column without an explicit `maxBytes`: 25 MB.
    public static let defaultMaxAttachmentBytes: Int64 = 25 * 1024 * 1024
    /// No column may allow more than this (1 GB).
    public static let largestAttachmentBytes: Int64 = 1024 * 1024 * 1024

    /// The largest attachment any column of the model allows (0 without attachment columns): the server's limit for an upload.
    public var largestAllowedAttachment: Int64 {
        tables.flatMap(\.columns).filter { $0.type == .attachment }.map { $0.maxBytes ?? Self.defaultMaxAttachmentBytes }.max() ?? 0
    }

    /// Checks one change against the model: table, column, row id and value. Pure; the server runs it
    /// on every pushed change and the replica's triggers enforce the same rules locally.
    public func validate(_ change: Change) -> ChangeRejection? {
        // By position, not `table(named:)`: that copies the table's whole description for every change.
        guard let t = tables.firstIndex(where: { $0.name == change.table }) else {
            return ChangeRejection(.unknownTable, "table '\(change.table.prefix(64))' is not in data model version \(version)")
        }
        guard isCanonicalUUID(change.row) else {
            return ChangeRejection(.invalidRowID, "row id '\(change.row.prefix(64))' is not a lowercase UUID (8-4-4-4-12 hex digits)")
        }
        if change.column == Merge.deletedColumn {
            guard change.value == .integer(1) || change.value == .integer(0) else {
                return ChangeRejection(.invalidValue, "\(tables[t].name).\(Merge.deletedColumn) is 1 (deleted) or 0 (restored)")
            }
            return nil
        }
        guard let c = tables[t].columns.firstIndex(where: { $0.name == change.column }) else {
            return ChangeRejection(.unknownColumn, "column '\(change.column.prefix(64))' is not in table '\(tables[t].name)'")
        }
        return validate(change.value, for: tables[t].columns[c], in: tables[t])
    }

    /// Checks one value against its column's type and rules.
    public func validate(_ value: CellValue, for column: Column, in table: Table) -> ChangeRejection? {
        // Only a refusal needs the place in words: valid values (nearly all) never build it.
        func at() -> String { "\(table.name).\(column.name)" }
        func invalid(_ why: String) -> ChangeRejection { ChangeRejection(.invalidValue, "\(at()): \(why)") }
        if case .null = value {
            return column.required == true ? invalid("a value is required") : nil
        }
        switch column.type {
        case .integer:
            guard case .integer(let v) = value else { return invalid("expected an integer") }
            if let rejection = checkBounds(Double(v), column, at()) { return rejection }
        case .boolean:
            guard case .integer(let v) = value, v == 0 || v == 1 else { return invalid("expected a boolean (0 or 1)") }
        case .real:
            switch value {
            case .integer(let v): if let rejection = checkBounds(Double(v), column, at()) { return rejection }
            case .real(let v):
                if !v.isFinite { return invalid("expected a finite number") }
                if let rejection = checkBounds(v, column, at()) { return rejection }
            default: return invalid("expected a number")
            }
        case .text:
            guard case .text(let text) = value else { return invalid("expected text") }
            let max = column.maxLength ?? Self.defaultMaxTextLength
            // Byte 0 is U+0000 and nothing else in UTF-8; no text has more scalars than bytes.
            if text.utf8.contains(0) { return invalid("text may not contain NUL characters") }
            if text.utf8.count > max, text.unicodeScalars.count > max {
                return ChangeRejection(.valueTooLong, "\(at()): at most \(max) characters, got \(text.unicodeScalars.count)")
            }
        case .date:
            guard case .text(let text) = value, isValidDate(text) else { return invalid("expected a calendar date YYYY-MM-DD") }
        case .datetime:
            guard case .text(let text) = value, isValidDateTime(text) else {
                return invalid("expected a UTC date-time YYYY-MM-DDTHH:MM:SS[.fff]Z")
            }
        case .enum:
            guard case .text(let text) = value, (column.values ?? []).contains(text) else {
                return invalid("expected one of \((column.values ?? []).joined(separator: ", "))")
            }
        case .reference:
            guard case .text(let text) = value, isCanonicalUUID(text) else {
                return invalid("expected the lowercase UUID of a row in '\(column.references ?? "?")'")
            }
        case .list:
            guard case .text(let text) = value, let items = parseStringList(text) else {
                return invalid("expected a JSON list of texts, e.g. [\"wmo\",\"jeugd\"]")
            }
            let maxItems = column.maxItems ?? 50
            if items.count > maxItems { return ChangeRejection(.valueTooLong, "\(at()): at most \(maxItems) items, got \(items.count)") }
            if let allowed = column.values, let wrong = items.first(where: { !allowed.contains($0) }) {
                return invalid("'\(wrong.prefix(40))' is not one of \(allowed.joined(separator: ", "))")
            }
            if let long = items.first(where: { $0.unicodeScalars.count > 200 || $0.unicodeScalars.contains("\0") }) {
                return invalid("list item '\(long.prefix(20))…' is too long or contains NUL")
            }
        case .attachment:
            guard case .text(let text) = value, let reference = AttachmentReference(cellText: text) else {
                let why = value.string.flatMap { try? JSONDecoder().decode(AttachmentReference.self, from: Data($0.utf8)) }?.problem
                return invalid(why ?? "expected an attachment reference {\"sha256\":…,\"size\":…,\"type\":…,\"name\":…} in canonical form; attach files with Replica.attach or kt attach")
            }
            let max = column.maxBytes ?? Self.defaultMaxAttachmentBytes
            if reference.size > max {
                return ChangeRejection(.valueTooLong, "\(at()): the file is \(reference.size) bytes; at most \(max) are allowed")
            }
            if !AttachmentReference.allows(reference.mediaType, in: column.mediaTypes) {
                return invalid("files of type \(reference.mediaType) are not allowed here; allowed: \((column.mediaTypes ?? []).joined(separator: ", "))")
            }
        }
        return nil
    }

    func checkBounds(_ value: Double, _ column: Column, _ at: @autoclosure () -> String) -> ChangeRejection? {
        if let minimum = column.minimum, value < minimum {
            return ChangeRejection(.invalidValue, "\(at()): at least \(formatBound(minimum)), got \(formatBound(value))")
        }
        if let maximum = column.maximum, value > maximum {
            return ChangeRejection(.invalidValue, "\(at()): at most \(formatBound(maximum)), got \(formatBound(value))")
        }
        return nil
    }
}

func formatBound(_ value: Double) -> String {
    value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
}

/// Parses a JSON array of strings, e.g. `["wmo","jeugd"]`; `nil` for anything else.
public func parseStringList(_ text: String) -> [String]? {
    var utf8 = Array(text.utf8)
    return utf8.withUnsafeMutableBytes { buffer -> [String]? in
        var reader = JSONReader(UnsafeRawBufferPointer(buffer))
        var items: [String] = []
        do {
            try reader.array { reader in items.append(try reader.string()) }
            try reader.end()
        } catch {
            return nil
        }
        return items
    }
}

/// Whether `text` is a UUID in canonical lowercase form, e.g. `0b8f0c4e-3c55-4a8a-9d2e-5f0f3e1c2b7a`.
public func isCanonicalUUID(_ text: String) -> Bool {
    let utf8 = text.utf8
    guard utf8.count == 36 else { return false }
    // Every row id of every change passes here: read the bytes in place when the string has them.
    return utf8.withContiguousStorageIfAvailable(isCanonicalUUID) ?? isCanonicalUUID(Array(utf8))
}

private func isCanonicalUUID<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> Bool {
    var i = -1
    for byte in bytes {
        i += 1
        if i == 8 || i == 13 || i == 18 || i == 23 {
            if byte != UInt8(ascii: "-") { return false }
        } else if !((byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))) {
            return false
        }
    }
    return true
}

/// Whether `text` is a real calendar date `YYYY-MM-DD` (so `2026-02-30` is not).
public func isValidDate(_ text: String) -> Bool {
    let b = Array(text.utf8)
    guard b.count == 10, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"),
          let y = digits(b[0..<4]), let m = digits(b[5..<7]), let d = digits(b[8..<10]),
          y >= 1, (1...12).contains(m), d >= 1
    else { return false }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
    let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]
    return d <= days
}

/// Whether `text` is `YYYY-MM-DDTHH:MM:SS` with optional fraction and a `Z`.
public func isValidDateTime(_ text: String) -> Bool {
    let b = Array(text.utf8)
    guard b.count >= 20, b.last == UInt8(ascii: "Z"), b[10] == UInt8(ascii: "T"),
          isValidDate(String(decoding: b[0..<10], as: UTF8.self)),
          b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"),
          let h = digits(b[11..<13]), let mi = digits(b[14..<16]), let s = digits(b[17..<19]),
          h < 24, mi < 60, s < 60
    else { return false }
    let rest = b[19..<(b.count - 1)]
    if rest.isEmpty { return true }
    guard rest.first == UInt8(ascii: "."), rest.count >= 2, rest.count <= 10, digits(rest.dropFirst()) != nil else { return false }
    return true
}

private func digits(_ bytes: ArraySlice<UInt8>) -> Int? {
    var value = 0
    for byte in bytes {
        guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
        value = value * 10 + Int(byte - UInt8(ascii: "0"))
    }
    return bytes.isEmpty ? nil : value
}

extension DataModel {
    /// Why `table`, `row` and `column` cannot name a record or cell of this model, in words, or `nil`.
    /// For commands that look a record up (`kt history`, `ktd admin history`): a typo must be an error,
    /// not an empty answer.
    public func addressProblem(table: String, row: String, column: String? = nil) -> String? {
        guard let model = self.table(named: table) else {
            let guess = Self.nearest(table, among: tables.map(\.name)).map { " (did you mean '\($0)'?)" } ?? ""
            return "no table '\(table)' in the data model\(guess); tables: \(tables.map(\.name).sorted().joined(separator: ", "))"
        }
        guard isCanonicalUUID(row) else { return "'\(row)' is not a row id (a lowercase UUID, 8-4-4-4-12 hex digits)" }
        if let column, column != Merge.deletedColumn, model.column(named: column) == nil {
            let guess = Self.nearest(column, among: model.columns.map(\.name)).map { " (did you mean '\($0)'?)" } ?? ""
            return "no column '\(column)' in \(table)\(guess); columns: \(model.columns.map(\.name).joined(separator: ", "))"
        }
        return nil
    }

    /// The name among `names` that `typed` most likely misspells: at most two edits away (a swap of
    /// two neighbouring letters is one), one for short names; `nil` if none or a tie.
    public static func nearest(_ typed: String, among names: some Sequence<String>) -> String? {
        let typed = Array(typed.lowercased().unicodeScalars)
        var best: (name: String, distance: Int)?
        var tie = false
        for name in Set(names) {
            let distance = editDistance(typed, Array(name.lowercased().unicodeScalars))
            guard distance <= (typed.count <= 4 ? 1 : 2) else { continue }
            if let current = best, current.distance <= distance {
                if current.distance == distance { tie = true }
                continue
            }
            best = (name, distance)
            tie = false
        }
        return tie ? nil : best?.name
    }

    /// Edits (insert, delete, replace, swap of neighbours) that turn `a` into `b`.
    static func editDistance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var previous2 = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { current[j] = min(current[j], previous2[j - 2] + 1) }
            }
            (previous2, previous, current) = (previous, current, previous2)
        }
        return previous[b.count]
    }
}
