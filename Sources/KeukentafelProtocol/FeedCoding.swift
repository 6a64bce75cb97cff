import Foundation

/// Hand-written JSON for the two hot messages of the protocol: the pull page (server → replica) and
/// the push batch (replica → server). Same JSON as `Codable` produces and accepts (the OpenAPI test
/// checks the shape); about five times faster on Linux, where a bootstrap moves a million cells.
/// Conflict records, rare and rich, go through `Codable` inside the same document.
public enum FeedCoding {
    // MARK: Pull page

    public static func encode(_ page: PullResponse) throws -> [UInt8] {
        var out = JSONWriter(capacity: 64 + page.rows.count * 400)
        out.raw("{\"cursor\":"); out.integer(page.cursor)
        out.raw(",\"more\":"); out.raw(page.more ? "true" : "false")
        out.raw(",\"rows\":[")
        for (i, row) in page.rows.enumerated() {
            if i > 0 { out.byte(UInt8(ascii: ",")) }
            out.raw("{\"table\":"); out.string(row.table)
            out.raw(",\"row\":"); out.string(row.row)
            out.raw(",\"cells\":[")
            for (j, cell) in row.cells.enumerated() {
                if j > 0 { out.byte(UInt8(ascii: ",")) }
                out.raw("{\"column\":"); out.string(cell.column)
                out.raw(",\"value\":"); out.value(cell.value)
                out.raw(",\"version\":\""); cell.version.appendWireForm(to: &out.bytes); out.raw("\"}")
            }
            out.raw("]}")
        }
        out.raw("],\"conflicts\":")
        // Most pages have none: no encoder for them (a push can wake thousands of long-polls).
        if page.conflicts.isEmpty { out.raw("[]") } else { out.bytes.append(contentsOf: try JSONEncoder().encode(page.conflicts)) }
        for (name, references) in [("evictions", page.evictions), ("purges", page.purges)] {
            out.raw(",\""); out.raw(name); out.raw("\":[")
            for (i, reference) in references.enumerated() {
                if i > 0 { out.byte(UInt8(ascii: ",")) }
                out.raw("{\"table\":"); out.string(reference.table)
                out.raw(",\"row\":"); out.string(reference.row)
                out.byte(UInt8(ascii: "}"))
            }
            out.byte(UInt8(ascii: "]"))
        }
        out.raw(",\"resync\":"); out.raw(page.resync ? "true" : "false")
        if let epoch = page.epoch { out.raw(",\"epoch\":"); out.string(epoch) }
        if let proof = page.cursorProof { out.raw(",\"cursorProof\":"); out.string(proof) }
        if let floor = page.floor { out.raw(",\"floor\":"); out.integer(floor) }
        if let head = page.head { out.raw(",\"head\":"); out.integer(head) }
        out.raw(",\"serverTime\":"); out.integer(page.serverTime)
        out.raw(",\"schemaVersion\":"); out.integer(Int64(page.schemaVersion))
        out.byte(UInt8(ascii: "}"))
        return out.bytes
    }

    /// `[]` (white space allowed): most pages' conflicts, evictions and purges, which need no decoder.
    static func isEmptyArray(_ bytes: Slice<UnsafeRawBufferPointer>) -> Bool {
        guard bytes.count <= 16 else { return false }
        let significant = bytes.filter { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }
        return significant == [UInt8(ascii: "["), UInt8(ascii: "]")]
    }

    public static func decodePull(_ data: Data) throws -> PullResponse {
        try data.withUnsafeBytes { buffer in
            var reader = JSONReader(buffer)
            var cursor: Int64?, more: Bool?, serverTime: Int64?, schemaVersion: Int64?
            var rows: [FeedRow] = []
            var conflicts: [ConflictRecord] = []
            var evictions: [RowReference] = [], purges: [RowReference] = []
            var resync = false
            var epoch: String?, cursorProof: String?, floor: Int64?, head: Int64?
            try reader.object { key, reader in
                switch key {
                case "epoch": epoch = try reader.string()
                case "cursorProof": cursorProof = try reader.string()
                case "floor": floor = try reader.integer()
                case "head": head = try reader.integer()
                case "evictions", "purges":
                    let range = try reader.skipValue()
                    let references = isEmptyArray(buffer[range]) ? [] : try JSONDecoder().decode([RowReference].self, from: Data(buffer[range]))
                    if key == "evictions" { evictions = references } else { purges = references }
                case "resync": resync = try reader.bool()
                case "cursor": cursor = try reader.integer()
                case "more": more = try reader.bool()
                case "serverTime": serverTime = try reader.integer()
                case "schemaVersion": schemaVersion = try reader.integer()
                case "rows":
                    rows.reserveCapacity(256)  // grown from 1, a full page's array was copied ten times
                    try reader.array { reader in rows.append(try decodeRow(&reader)) }
                case "conflicts":
                    let range = try reader.skipValue()
                    conflicts = isEmptyArray(buffer[range]) ? [] : try JSONDecoder().decode([ConflictRecord].self, from: Data(buffer[range]))
                default: _ = try reader.skipValue()
                }
            }
            try reader.end()
            guard let cursor, let more, let serverTime, let schemaVersion else {
                throw JSONReader.Error(message: "a pull page needs cursor, more, serverTime and schemaVersion", offset: 0)
            }
            return PullResponse(cursor: cursor, more: more, rows: rows, conflicts: conflicts, evictions: evictions,
                                purges: purges, resync: resync, epoch: epoch, cursorProof: cursorProof, floor: floor, head: head, serverTime: serverTime,
                                schemaVersion: Int(schemaVersion))
        }
    }

    /// What a pull page says about the page after it, read without decoding its rows, so the next
    /// request can go out while this page is decoded and applied. Nil if the body is not a page; the
    /// full decode (`decodePull`) says why.
    public static func peekPull(_ data: Data) -> (cursor: Int64, more: Bool, resync: Bool, epoch: String?, floor: Int64?)? {
        try? data.withUnsafeBytes { buffer -> (cursor: Int64, more: Bool, resync: Bool, epoch: String?, floor: Int64?)? in
            var reader = JSONReader(buffer)
            var cursor: Int64?, more: Bool?, resync = false, epoch: String?, floor: Int64?
            try reader.object { key, reader in
                switch key {
                case "cursor": cursor = try reader.integer()
                case "floor": floor = try reader.integer()
                case "more": more = try reader.bool()
                case "resync": resync = try reader.bool()
                case "epoch": epoch = try reader.string()
                default: try reader.skipQuickly()
                }
            }
            guard let cursor, let more else { return nil }
            return (cursor, more, resync, epoch, floor)
        }
    }

    static func decodeRow(_ reader: inout JSONReader) throws -> FeedRow {
        var table: String?, row: String?
        var cells: [FeedCell] = []
        try reader.object { key, reader in
            switch key {
            case "table": table = try reader.string()
            case "row": row = try reader.string()
            case "cells":
                cells.reserveCapacity(8)  // most rows hold a few cells: without it, three copies on the way to 8
                try reader.array { reader in
                    var column: String?, value: CellValue?, version: CellVersion?
                    try reader.object { key, reader in
                        switch key {
                        case "column": column = try reader.string()
                        case "value": value = try reader.cellValue()
                        case "version": version = try reader.version()
                        default: _ = try reader.skipValue()
                        }
                    }
                    guard let column, let value, let version else {
                        throw JSONReader.Error(message: "a cell needs column, value and version", offset: reader.offset)
                    }
                    cells.append(FeedCell(column: column, value: value, version: version))
                }
            default: _ = try reader.skipValue()
            }
        }
        guard let table, let row else { throw JSONReader.Error(message: "a row needs table and row", offset: reader.offset) }
        return FeedRow(table: table, row: row, cells: cells)
    }

    // MARK: Push batch

    public static func encode(_ request: PushRequest) -> [UInt8] {
        var out = JSONWriter(capacity: 64 + request.changes.count * 200)
        out.raw("{\"node\":\""); out.raw(request.node.description)
        out.raw("\",\"schemaVersion\":"); out.integer(Int64(request.schemaVersion))
        out.raw(",\"changes\":[")
        for (i, change) in request.changes.enumerated() {
            if i > 0 { out.byte(UInt8(ascii: ",")) }
            out.raw("{\"id\":"); out.string(change.id)
            out.raw(",\"table\":"); out.string(change.table)
            out.raw(",\"row\":"); out.string(change.row)
            out.raw(",\"column\":"); out.string(change.column)
            out.raw(",\"value\":"); out.value(change.value)
            out.raw(",\"version\":\""); out.raw(change.version.description); out.raw("\"")
            if let base = change.base { out.raw(",\"base\":\""); out.raw(base.description); out.raw("\"") }
            out.byte(UInt8(ascii: "}"))
        }
        out.byte(UInt8(ascii: "]"))
        if let resolutions = request.resolutions, !resolutions.isEmpty {
            out.raw(",\"resolutions\":[")
            for (i, r) in resolutions.enumerated() {
                if i > 0 { out.byte(UInt8(ascii: ",")) }
                out.raw("{\"conflict\":"); out.integer(r.conflict)
                out.raw(",\"resolution\":"); out.string(r.resolution)
                out.byte(UInt8(ascii: "}"))
            }
            out.byte(UInt8(ascii: "]"))
        }
        out.byte(UInt8(ascii: "}"))
        return out.bytes
    }

    /// Strict: text must be valid UTF-8, numbers finite, keys known where it matters.
    public static func decodePush(_ bytes: UnsafeRawBufferPointer) throws -> PushRequest {
        var reader = JSONReader(bytes)
        var node: NodeID?, schemaVersion: Int64?
        var changes: [Change] = []
        var rejected: [Int: ChangeRejection] = [:]
        var resolutions: [Resolution]?
        try reader.object { key, reader in
            switch key {
            case "resolutions":
                var list: [Resolution] = []
                try reader.array { reader in
                    var conflict: Int64?, resolution: String?
                    try reader.object { key, reader in
                        switch key {
                        case "conflict": conflict = try reader.integer()
                        case "resolution": resolution = try reader.string()
                        default: _ = try reader.skipValue()
                        }
                    }
                    guard let conflict, let resolution else {
                        throw JSONReader.Error(message: "a resolution needs conflict and resolution", offset: reader.offset)
                    }
                    list.append(Resolution(conflict: conflict, resolution: resolution))
                }
                resolutions = list
            case "node":
                let text = try reader.string()
                guard let id = NodeID(text) else { throw JSONReader.Error(message: "node is 16 lowercase hex digits", offset: reader.offset) }
                node = id
            case "schemaVersion": schemaVersion = try reader.integer()
            case "changes":
                try reader.array { reader in
                    var id: String?, table: String?, row: String?, column: String?
                    var value: CellValue?, version: CellVersion?, base: CellVersion?
                    try reader.object { key, reader in
                        switch key {
                        case "id": id = try reader.string()
                        case "table": table = try reader.string()
                        case "row": row = try reader.string()
                        case "column": column = try reader.string()
                        case "value":
                            do {
                                value = try reader.cellValue()
                            } catch let error as JSONReader.Error where error.isInvalidUTF8 {
                                // The string was read to its end; refuse this change only.
                                value = .null
                                rejected[changes.count] = ChangeRejection(.invalidValue, "the value is not valid UTF-8 text")
                            }
                        case "version": version = try reader.version()
                        case "base": base = try reader.isNull() ? nil : try reader.version()
                        default: _ = try reader.skipValue()
                        }
                    }
                    guard let id, let table, let row, let column, let value, let version else {
                        throw JSONReader.Error(message: "change \(changes.count) needs id, table, row, column, value and version", offset: reader.offset)
                    }
                    changes.append(Change(id: id, table: table, row: row, column: column, value: value, version: version, base: base))
                }
            default: _ = try reader.skipValue()
            }
        }
        try reader.end()
        guard let node, let schemaVersion else { throw JSONReader.Error(message: "a push needs node, schemaVersion and changes", offset: 0) }
        var request = PushRequest(node: node, schemaVersion: Int(schemaVersion), changes: changes, resolutions: resolutions)
        request.rejectedWhileDecoding = rejected
        return request
    }
}

extension FeedCoding {
    // MARK: Push response

    /// The answer to a push: one result per change, as many as the batch had (up to 20,000).
    /// Through `JSONEncoder` this was 8 % of a concurrent ingest's time, and `JSONDecoder` on the
    /// device another 9 %.
    public static func encode(_ response: PushResponse) -> [UInt8] {
        var out = JSONWriter(capacity: 64 + response.results.count * 64)
        out.raw("{\"serverTime\":"); out.integer(response.serverTime)
        out.raw(",\"results\":[")
        for (i, result) in response.results.enumerated() {
            if i > 0 { out.byte(UInt8(ascii: ",")) }
            out.raw("{\"id\":"); out.string(result.id)
            out.raw(",\"status\":"); out.string(result.status.rawValue)
            if let won = result.won { out.raw(won ? ",\"won\":true" : ",\"won\":false") }
            if let conflict = result.conflict { out.raw(",\"conflict\":"); out.integer(conflict) }
            if let code = result.code { out.raw(",\"code\":"); out.string(code.rawValue) }
            if let message = result.message { out.raw(",\"message\":"); out.string(message) }
            out.byte(UInt8(ascii: "}"))
        }
        out.byte(UInt8(ascii: "]"))
        if let resolved = response.resolved {
            out.raw(",\"resolved\":[")
            for (i, id) in resolved.enumerated() {
                if i > 0 { out.byte(UInt8(ascii: ",")) }
                out.integer(id)
            }
            out.byte(UInt8(ascii: "]"))
        }
        if let refused = response.refusedResolutions {
            // Rare: only a decision the device may not make.
            out.raw(",\"refusedResolutions\":")
            let encoded: Data = (try? JSONEncoder().encode(refused)) ?? Data("[]".utf8)
            out.bytes.append(contentsOf: encoded)
        }
        out.byte(UInt8(ascii: "}"))
        return out.bytes
    }

    /// Accepts what `Codable` accepts for a push response; unknown keys are skipped, an unknown
    /// status or error code is an error (as with `Codable`).
    public static func decodePushResponse(_ data: Data) throws -> PushResponse {
        try data.withUnsafeBytes { buffer in
            var reader = JSONReader(buffer)
            var serverTime: Int64?
            var results: [ChangeResult] = []
            var resolved: [Int64]?
            var refusedResolutions: [RefusedResolution]?
            try reader.object { key, reader in
                switch key {
                case "serverTime": serverTime = try reader.integer()
                case "refusedResolutions":
                    let range = try reader.skipValue()
                    refusedResolutions = try JSONDecoder().decode([RefusedResolution]?.self, from: Data(buffer[range]))
                case "resolved":
                    if try reader.isNull() { break }
                    var ids: [Int64] = []
                    try reader.array { reader in ids.append(try reader.integer()) }
                    resolved = ids
                case "results":
                    try reader.array { reader in
                        var id: String?, status: ChangeStatus?, won: Bool?, conflict: Int64?, code: ErrorCode?, message: String?
                        try reader.object { key, reader in
                            if try reader.isNull() { return }  // an absent optional, written as null
                            switch key {
                            case "id": id = try reader.string()
                            case "status":
                                let text = try reader.string()
                                guard let known = ChangeStatus(rawValue: text) else { throw reader.fail("unknown change status '\(text)'") }
                                status = known
                            case "won": won = try reader.bool()
                            case "conflict": conflict = try reader.integer()
                            case "code":
                                let text = try reader.string()
                                guard let known = ErrorCode(rawValue: text) else { throw reader.fail("unknown error code '\(text)'") }
                                code = known
                            case "message": message = try reader.string()
                            default: _ = try reader.skipValue()
                            }
                        }
                        guard let id, let status else { throw reader.fail("result \(results.count) needs id and status") }
                        results.append(ChangeResult(id: id, status: status, won: won, conflict: conflict, code: code, message: message))
                    }
                default: _ = try reader.skipValue()
                }
            }
            try reader.end()
            guard let serverTime else { throw JSONReader.Error(message: "a push response needs serverTime and results", offset: 0) }
            return PushResponse(serverTime: serverTime, results: results, resolved: resolved, refusedResolutions: refusedResolutions)
        }
    }
}

/// Appends JSON text to a byte array.
package struct JSONWriter {
    package var bytes: [UInt8]

    package init(capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    package mutating func byte(_ b: UInt8) { bytes.append(b) }
    package mutating func raw(_ text: String) { bytes.append(contentsOf: text.utf8) }
    /// Digits written straight into the buffer: `String(v)` allocates for the 18- and 19-digit
    /// clocks and node ids that every cell carries.
    package mutating func integer(_ v: Int64) {
        if v < 0 { byte(UInt8(ascii: "-")) }
        var magnitude = v.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for 20 digits
        withUnsafeMutableBytes(of: &digits) { buffer in
            var end = buffer.count
            repeat {
                end -= 1
                buffer[end] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            bytes.append(contentsOf: buffer[end...])
        }
    }

    package mutating func value(_ value: CellValue) {
        switch value {
        case .null: raw("null")
        case .integer(let v): integer(v)
        case .real(let v): raw(v.isFinite ? "\(v)" : "null")
        case .text(let v): string(v)
        }
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    package mutating func string(_ text: String) {
        byte(UInt8(ascii: "\""))
        var text = text
        // Runs of bytes that need no escaping (nearly all of them) are copied whole: a byte-by-byte
        // append was the push's largest single cost in profiles (issue 17).
        text.withUTF8 { utf8 in
            var runStart = 0
            for index in 0..<utf8.count {
                let b = utf8[index]
                guard b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") else { continue }
                if runStart < index { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index])) }
                runStart = index + 1
                switch b {
                case UInt8(ascii: "\""): raw("\\\"")
                case UInt8(ascii: "\\"): raw("\\\\")
                case 0x0A: raw("\\n")
                case 0x0D: raw("\\r")
                case 0x09: raw("\\t")
                default:
                    raw("\\u00")
                    byte(Self.hex[Int(b >> 4)])
                    byte(Self.hex[Int(b & 0xF)])
                }
            }
            if runStart < utf8.count { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...])) }
        }
        byte(UInt8(ascii: "\""))
    }
}

/// A small pull parser over UTF-8 JSON bytes, driven by the decoder of each message.
package struct JSONReader {
    package struct Error: Swift.Error, CustomStringConvertible {
        var message: String
        var offset: Int
        package var description: String { "invalid JSON at byte \(offset): \(message)" }
        var isInvalidUTF8: Bool { message == Self.invalidUTF8 }
        static let invalidUTF8 = "text is not valid UTF-8"
    }

    package let bytes: UnsafeRawBufferPointer
    package var offset = 0
    /// Nesting depth, bounded so hostile input cannot exhaust the stack.
    package var depth = 0
    package static let maxDepth = 64

    package init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    package func fail(_ message: String) -> Error { Error(message: message, offset: offset) }

    package mutating func skipWhitespace() {
        while offset < bytes.count {
            switch bytes[offset] {
            case 0x20, 0x0A, 0x0D, 0x09: offset += 1
            default: return
            }
        }
    }

    package mutating func peek() throws -> UInt8 {
        skipWhitespace()
        guard offset < bytes.count else { throw fail("unexpected end") }
        return bytes[offset]
    }

    package mutating func expect(_ b: UInt8) throws {
        guard try peek() == b else { throw fail("expected '\(Character(UnicodeScalar(b)))'") }
        offset += 1
    }

    package mutating func end() throws {
        skipWhitespace()
        if offset != bytes.count { throw fail("trailing characters") }
    }

    package mutating func object(_ field: (String, inout JSONReader) throws -> Void) throws {
        try expect(UInt8(ascii: "{"))
        depth += 1
        defer { depth -= 1 }
        if depth > Self.maxDepth { throw fail("nested too deeply") }
        if try peek() == UInt8(ascii: "}") { offset += 1; return }
        // Duplicate keys are refused (two values for one field is an attack or a bug). Objects here
        // have a handful of keys, so a list beats a set.
        var seen: [String] = []
        while true {
            let key = try string()
            if seen.contains(key) { throw fail("duplicate key '\(key.prefix(40))'") }
            if seen.count > 256 { throw fail("too many keys in one object") }
            seen.append(key)
            try expect(UInt8(ascii: ":"))
            try field(key, &self)
            switch try peek() {
            case UInt8(ascii: ","): offset += 1
            case UInt8(ascii: "}"): offset += 1; return
            default: throw fail("expected ',' or '}'")
            }
        }
    }

    package mutating func array(_ element: (inout JSONReader) throws -> Void) throws {
        try expect(UInt8(ascii: "["))
        depth += 1
        defer { depth -= 1 }
        if depth > Self.maxDepth { throw fail("nested too deeply") }
        if try peek() == UInt8(ascii: "]") { offset += 1; return }
        while true {
            try element(&self)
            switch try peek() {
            case UInt8(ascii: ","): offset += 1
            case UInt8(ascii: "]"): offset += 1; return
            default: throw fail("expected ',' or ']'")
            }
        }
    }

    package mutating func isNull() throws -> Bool {
        if try peek() == UInt8(ascii: "n") {
            try literal("null")
            return true
        }
        return false
    }

    package mutating func literal(_ word: String) throws {
        for b in word.utf8 {
            guard offset < bytes.count, bytes[offset] == b else { throw fail("expected \(word)") }
            offset += 1
        }
    }

    package mutating func bool() throws -> Bool {
        switch try peek() {
        case UInt8(ascii: "t"): try literal("true"); return true
        case UInt8(ascii: "f"): try literal("false"); return false
        default: throw fail("expected true or false")
        }
    }

    package mutating func integer() throws -> Int64 {
        guard case .integer(let v) = try number() else { throw fail("expected an integer") }
        return v
    }

    package mutating func version() throws -> CellVersion {
        // The wire form is 33 ASCII characters with nothing to unescape: parsed where it lies, without
        // making a String and an array of it for every cell of a page. Anything else (escapes, another
        // length, not hex) takes the general path, which says what is wrong.
        if try peek() == UInt8(ascii: "\""), offset + 34 < bytes.count, bytes[offset + 34] == UInt8(ascii: "\""),
           let version = CellVersion(wireForm: UnsafeRawBufferPointer(rebasing: bytes[(offset + 1)..<(offset + 34)])) {
            offset += 35
            return version
        }
        let text = try string()
        guard let version = CellVersion(text) else { throw fail("a version is '<16 hex>-<16 hex>'") }
        return version
    }

    package mutating func cellValue() throws -> CellValue {
        switch try peek() {
        case UInt8(ascii: "\""): return .text(try string())
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "t"): try literal("true"); return .integer(1)
        case UInt8(ascii: "f"): try literal("false"); return .integer(0)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw fail("a cell value is null, a number, a string or a boolean")
        }
    }

    package mutating func number() throws -> CellValue {
        _ = try peek()
        let start = offset
        var isInteger = true
        while offset < bytes.count {
            let b = bytes[offset]
            if (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "-") {
                offset += 1
            } else if b == UInt8(ascii: ".") || b == UInt8(ascii: "e") || b == UInt8(ascii: "E") || b == UInt8(ascii: "+") {
                isInteger = false
                offset += 1
            } else {
                break
            }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<offset]), as: UTF8.self)
        if isInteger, let v = Int64(text) { return .integer(v) }
        guard let d = Double(text), d.isFinite else { throw fail("not a finite number: \(text.prefix(30))") }
        return .real(d)
    }

    package mutating func string() throws -> String {
        try expect(UInt8(ascii: "\""))
        let start = offset
        var ascii = true
        // Fast path: no escapes.
        while offset < bytes.count {
            let b = bytes[offset]
            if b == UInt8(ascii: "\"") {
                let slice = UnsafeRawBufferPointer(rebasing: bytes[start..<offset])
                offset += 1
                // ASCII is valid UTF-8 as it is. `String(validating:)` is not specialized here: every call
                // looked up generic metadata at run time, a quarter of decoding a push.
                if ascii { return String(decoding: slice.assumingMemoryBound(to: UInt8.self), as: UTF8.self) }
                guard let text = String(validating: slice, as: UTF8.self) else { throw fail(Error.invalidUTF8) }
                return text
            }
            if b == UInt8(ascii: "\\") { break }
            if b < 0x20 { throw fail("control character in string") }
            if b >= 0x80 { ascii = false }
            offset += 1
        }
        // Slow path: unescape.
        var out = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[start..<offset]))
        while offset < bytes.count {
            let b = bytes[offset]
            offset += 1
            switch b {
            case UInt8(ascii: "\""):
                guard let text = String(validating: out, as: UTF8.self) else { throw fail(Error.invalidUTF8) }
                return text
            case UInt8(ascii: "\\"):
                guard offset < bytes.count else { throw fail("unterminated escape") }
                let e = bytes[offset]
                offset += 1
                switch e {
                case UInt8(ascii: "\""): out.append(e)
                case UInt8(ascii: "\\"): out.append(e)
                case UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard offset + 1 < bytes.count, bytes[offset] == UInt8(ascii: "\\"), bytes[offset + 1] == UInt8(ascii: "u") else {
                            throw fail("unpaired surrogate")
                        }
                        offset += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw fail("unpaired surrogate")
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw fail("invalid \\u escape") }
                    out.append(contentsOf: Array(String(Character(unicode)).utf8))
                default: throw fail("invalid escape")
                }
            default:
                if b < 0x20 { throw fail("control character in string") }
                out.append(b)
            }
        }
        throw fail("unterminated string")
    }

    package mutating func hex4() throws -> UInt32 {
        guard offset + 4 <= bytes.count else { throw fail("short \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[offset]
            offset += 1
            let digit: UInt32
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(b - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(b - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(b - UInt8(ascii: "A") + 10)
            default: throw fail("invalid hex digit in \\u escape")
            }
            value = value << 4 | digit
        }
        return value
    }

    /// Skips one value of any kind and returns the byte range it occupied.
    /// Moves past one value by its brackets and string quotes alone: no strings made, no numbers or
    /// UTF-8 checked (for a look ahead whose document is decoded in full afterwards).
    package mutating func skipQuickly() throws {
        _ = try peek()
        var depth = 0
        var inString = false
        while offset < bytes.count {
            let byte = bytes[offset]
            offset += 1
            if inString {
                if byte == UInt8(ascii: "\\") { offset += 1 } else if byte == UInt8(ascii: "\"") { inString = false }
                if !inString && depth == 0 { return }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if depth == 0 { offset -= 1; return }  // the end of the enclosing object: a number or literal ended
                depth -= 1
                if depth == 0 { return }
            case UInt8(ascii: ","), UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"):
                if depth == 0 { offset -= 1; return }  // the end of a number or literal
            default: break
            }
        }
        if depth > 0 || inString { throw Error(message: "unexpected end of input", offset: offset) }
    }

    package mutating func skipValue() throws -> Range<Int> {
        _ = try peek()
        let start = offset
        switch bytes[offset] {
        case UInt8(ascii: "{"): try object { _, reader in _ = try reader.skipValue() }
        case UInt8(ascii: "["): try array { reader in _ = try reader.skipValue() }
        case UInt8(ascii: "\""): _ = try string()
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        default: _ = try number()
        }
        return start..<offset
    }
}
