import KeukentafelProtocol

/// The pieces the store's binary forms are made of (records, `RowCoding`; history entries,
/// `HistoryCoding`; decision 0031): unsigned LEB128 varints, zigzag for signed differences,
/// length-prefixed UTF-8, and tagged cell values.
enum StoredBytes {
    static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    static func appendSigned(_ value: Int64, to bytes: inout [UInt8]) { appendVarint(zigzag(value), to: &bytes) }

    static func appendFixed64(_ value: UInt64, to bytes: inout [UInt8]) {
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    static func appendString(_ string: String, to bytes: inout [UInt8]) {
        var string = string
        string.withUTF8 { utf8 in
            appendVarint(UInt64(utf8.count), to: &bytes)
            bytes.append(contentsOf: utf8)
        }
    }

    /// A tag (0 null, 1 integer, 2 real, 3 text), then a zigzag varint, 8 bytes, or a string.
    static func appendValue(_ value: CellValue, to bytes: inout [UInt8]) {
        switch value {
        case .null:
            bytes.append(0)
        case .integer(let v):
            bytes.append(1)
            appendSigned(v, to: &bytes)
        case .real(let v):
            bytes.append(2)
            appendFixed64(v.bitPattern, to: &bytes)
        case .text(let v):
            bytes.append(3)
            appendString(v, to: &bytes)
        }
    }

    /// A column or a device (format 3): its number in `numbering`, or 0 and the name spelled out when
    /// it has none (`NumberedNames`).
    static func appendName(_ name: String, _ numbering: Numbering, to bytes: inout [UInt8]) {
        if let number = numbering.number(name) {
            appendVarint(UInt64(number), to: &bytes)
        } else {
            bytes.append(0)
            appendString(name, to: &bytes)
        }
    }

    static func zigzag(_ v: Int64) -> UInt64 { UInt64(bitPattern: (v << 1) ^ (v >> 63)) }
    static func unzigzag(_ v: UInt64) -> Int64 { Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1) }

    /// Reads what the `append` functions wrote; anything else is `StoreError.corrupt` naming `what`.
    struct Reader {
        let bytes: UnsafeRawBufferPointer
        let what: String
        var at = 0

        init(_ bytes: UnsafeRawBufferPointer, what: String) {
            self.bytes = bytes
            self.what = what
        }

        var isAtEnd: Bool { at == bytes.count }

        func corrupt(_ problem: String) -> StoreError { StoreError.corrupt("\(what) \(problem)") }

        mutating func byte() throws -> UInt8 {
            guard at < bytes.count else { throw corrupt("ends too early") }
            defer { at += 1 }
            return bytes[at]
        }

        mutating func varint() throws -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                let b = try byte()
                guard shift < 64 else { throw corrupt("holds a number too long") }
                value |= UInt64(b & 0x7f) << shift
                if b < 0x80 { return value }
                shift += 7
            }
        }

        mutating func signed() throws -> Int64 { unzigzag(try varint()) }

        /// A count, length or index: no larger than the bytes themselves.
        mutating func count() throws -> Int {
            let v = try varint()
            guard v <= UInt64(bytes.count) else { throw corrupt("holds a count beyond its length") }
            return Int(v)
        }

        mutating func fixed64() throws -> UInt64 {
            guard bytes.count - at >= 8 else { throw corrupt("ends too early") }
            var v: UInt64 = 0
            for i in 0..<8 { v |= UInt64(bytes[at + i]) << UInt64(8 * i) }
            at += 8
            return v
        }

        mutating func string() throws -> String {
            let length = try count()
            guard bytes.count - at >= length else { throw corrupt("ends too early") }
            defer { at += length }
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[at..<at + length]), as: UTF8.self)
        }

        /// A name as `appendName` wrote it. `known`: the numbers this reader looked up so far, renewed
        /// from `names` when a number is not among them; `kind`: what is named, for the error.
        mutating func name(_ known: inout Numbering, _ names: NumberedNames, kind: String) throws -> String {
            let number = try varint()
            if number == 0 { return try string() }
            guard number <= UInt64(Int32.max) else { throw corrupt("names a \(kind) by a number too large") }
            if let name = known.name(Int(number)) { return name }
            guard let name = try names.name(Int(number)) else { throw corrupt("names \(kind) number \(number), which the store does not know") }
            known = names.current
            return name
        }

        mutating func value() throws -> CellValue {
            switch try byte() {
            case 0: return .null
            case 1: return .integer(try signed())
            case 2: return .real(Double(bitPattern: try fixed64()))
            case 3: return .text(try string())
            default: throw corrupt("holds a value of an unknown kind")
            }
        }

        mutating func node() throws -> NodeID {
            guard let node = NodeID(rawValue: try fixed64()) else { throw corrupt("names an invalid node") }
            return node
        }
    }
}
