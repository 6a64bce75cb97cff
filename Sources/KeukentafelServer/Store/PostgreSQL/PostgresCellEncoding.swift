import Foundation
import KeukentafelProtocol
import NIOCore
import PostgresNIO

/// Cell values to and from PostgreSQL.
///
/// A column that holds cell values (`cells.value`, `conflicts.winner_value`, `meta.value`, …) is `bytea`, and
/// a value in it is tagged with its type: `i` + 8 bytes big-endian integer, `r` + 8 bytes IEEE 754
/// double, `t` + UTF-8 text; `NULL` is SQL `NULL`. The encoding is one-to-one, so `value = ?` and
/// the indexes over `value` find exactly what SQLite finds. Other columns carry their own types
/// (`text`, `bigint`), converted as SQLite would convert them.
enum PostgresCellEncoding {
    static let integerTag: UInt8 = 0x69  // "i"
    static let realTag: UInt8 = 0x72  // "r"
    static let textTag: UInt8 = 0x74  // "t"

    /// A bind parameter of PostgreSQL type `type` holding `value`.
    static func encode(_ value: CellValue, as type: PostgresDataType) throws -> PostgresData {
        var buffer = ByteBufferAllocator().buffer(capacity: 16)
        if case .null = value { return PostgresData(type: type, value: nil) }
        switch type {
        case .bytea:
            switch value {
            case .integer(let v): buffer.writeInteger(integerTag); buffer.writeInteger(v)
            case .real(let v): buffer.writeInteger(realTag); buffer.writeInteger(v.bitPattern)
            case .text(let v): buffer.writeInteger(textTag); buffer.writeString(v)
            case .null: break
            }
        case .int8, .int4, .int2:
            let number: Int64
            switch value {
            case .integer(let v): number = v
            case .real(let v): number = Int64(exactly: v.rounded()) ?? 0
            case .text(let v):
                guard let parsed = Int64(v) else { throw mismatch(value, type) }
                number = parsed
            case .null: number = 0
            }
            if type == .int8 {
                buffer.writeInteger(number)
            } else if type == .int4 {
                guard let narrow = Int32(exactly: number) else { throw mismatch(value, type) }
                buffer.writeInteger(narrow)
            } else {
                guard let narrow = Int16(exactly: number) else { throw mismatch(value, type) }
                buffer.writeInteger(narrow)
            }
        case .float8:
            switch value {
            case .integer(let v): buffer.writeInteger(Double(v).bitPattern)
            case .real(let v): buffer.writeInteger(v.bitPattern)
            case .text(let v):
                guard let parsed = Double(v) else { throw mismatch(value, type) }
                buffer.writeInteger(parsed.bitPattern)
            case .null: break
            }
        case .bool:
            switch value {
            case .integer(let v): buffer.writeInteger(UInt8(v != 0 ? 1 : 0))
            default: throw mismatch(value, type)
            }
        case .text, .varchar, .name, .bpchar, .unknown:
            switch value {
            case .text(let v): buffer.writeString(v)
            case .integer(let v): buffer.writeString(String(v))
            case .real(let v): buffer.writeString(String(v))
            case .null: break
            }
            return PostgresData(type: type == .unknown ? .text : type, formatCode: .binary, value: buffer)
        default:
            throw PostgresStoreError(message: "parameters of PostgreSQL type \(type) are not supported", sqlState: nil, sql: nil)
        }
        return PostgresData(type: type, formatCode: .binary, value: buffer)
    }

    /// A result column as a cell value.
    static func decode(_ cell: PostgresCell) -> CellValue {
        guard var bytes = cell.bytes else { return .null }
        if cell.format == .text {
            let text = bytes.readString(length: bytes.readableBytes) ?? ""
            switch cell.dataType {
            case .int2, .int4, .int8, .oid: return Int64(text).map(CellValue.integer) ?? .text(text)
            case .float4, .float8, .numeric: return Double(text).map(CellValue.real) ?? .text(text)
            case .bool: return .integer(text == "t" ? 1 : 0)
            default: return .text(text)
            }
        }
        switch cell.dataType {
        case .bytea:
            guard let tag: UInt8 = bytes.readInteger() else { return .null }
            switch tag {
            case integerTag: return bytes.readInteger(as: Int64.self).map(CellValue.integer) ?? .null
            case realTag: return bytes.readInteger(as: UInt64.self).map { .real(Double(bitPattern: $0)) } ?? .null
            default: return .text(bytes.readString(length: bytes.readableBytes) ?? "")
            }
        case .int8: return bytes.readInteger(as: Int64.self).map(CellValue.integer) ?? .null
        case .int4: return bytes.readInteger(as: Int32.self).map { .integer(Int64($0)) } ?? .null
        case .int2: return bytes.readInteger(as: Int16.self).map { .integer(Int64($0)) } ?? .null
        case .oid: return bytes.readInteger(as: UInt32.self).map { .integer(Int64($0)) } ?? .null
        case .float8: return bytes.readInteger(as: UInt64.self).map { .real(Double(bitPattern: $0)) } ?? .null
        case .float4: return bytes.readInteger(as: UInt32.self).map { .real(Double(Float(bitPattern: $0))) } ?? .null
        case .bool: return .integer(bytes.readInteger(as: UInt8.self) == 1 ? 1 : 0)
        case .numeric:
            if let decimal = try? cell.decode(Decimal.self) {
                let number = NSDecimalNumber(decimal: decimal)
                return number.doubleValue.rounded() == number.doubleValue ? .integer(number.int64Value) : .real(number.doubleValue)
            }
            return .null
        default:
            return .text(bytes.readString(length: bytes.readableBytes) ?? "")
        }
    }

    private static func mismatch(_ value: CellValue, _ type: PostgresDataType) -> PostgresStoreError {
        PostgresStoreError(message: "a \(value.typeName) cannot be a PostgreSQL \(type) parameter", sqlState: nil, sql: nil)
    }
}

extension CellValue {
    var typeName: String {
        switch self {
        case .null: return "null"
        case .integer: return "integer"
        case .real: return "real"
        case .text: return "text"
        }
    }
}
