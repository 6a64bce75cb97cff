import Foundation
import KeukentafelProtocol

/// Why a row did not fit the Swift type asked for.
public struct RecordDecodingError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// Decodes one result row (column name → value) into a `Decodable` type, by coding key: `Int`,
/// `Int64`, `Double`, `Bool` (0/1), `String` (and `String`-backed enums), `Date` (a `datetime`
/// column's UTC text), `[String]` (a `list` column), and optionals of them (NULL or a missing column).
struct RowDecoder: Decoder {
    let row: [String: CellValue]
    var codingPath: [any CodingKey] = []
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(Keyed<Key>(row: row))
    }
    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        throw RecordDecodingError(description: "a row decodes into a type with named properties, not a list")
    }
    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        throw RecordDecodingError(description: "a row decodes into a type with named properties, not a single value")
    }

    struct Keyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let row: [String: CellValue]
        var codingPath: [any CodingKey] = []
        var allKeys: [Key] { row.keys.compactMap { Key(stringValue: $0) } }

        func contains(_ key: Key) -> Bool { row[key.stringValue] != nil }
        func decodeNil(forKey key: Key) throws -> Bool { (row[key.stringValue] ?? .null) == .null }

        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
            guard let value = row[key.stringValue] else {
                throw RecordDecodingError(description: "the query has no column '\(key.stringValue)' (columns: \(row.keys.sorted().joined(separator: ", ")))")
            }
            return try CellDecoder.decode(type, from: value, column: key.stringValue)
        }

        func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
            throw RecordDecodingError(description: "column '\(key.stringValue)' holds one value, not a nested record")
        }
        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
            throw RecordDecodingError(description: "column '\(key.stringValue)': decode a list column as [String]")
        }
        func superDecoder() throws -> any Decoder { RowDecoder(row: row) }
        func superDecoder(forKey key: Key) throws -> any Decoder { RowDecoder(row: row) }
    }
}

/// One cell as a Swift value.
struct CellDecoder: Decoder, SingleValueDecodingContainer {
    let value: CellValue
    let column: String
    var codingPath: [any CodingKey] = []
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    static func decode<T: Decodable>(_ type: T.Type, from value: CellValue, column: String) throws -> T {
        if type == Date.self {
            guard case .text(let text) = value, let date = DateTimeText.date(text) else { throw mismatch(value, "a date-time", column) }
            return date as! T
        }
        if type == [String].self {
            guard case .text(let text) = value, let items = try? JSONDecoder().decode([String].self, from: Data(text.utf8)) else {
                throw mismatch(value, "a list of texts", column)
            }
            return items as! T
        }
        return try T(from: CellDecoder(value: value, column: column))
    }

    static func mismatch(_ value: CellValue, _ expected: String, _ column: String) -> RecordDecodingError {
        RecordDecodingError(description: "column '\(column)' holds \(value == .null ? "NULL" : "'\(value)'"), which is not \(expected)")
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        throw RecordDecodingError(description: "column '\(column)' holds one value, not a nested record")
    }
    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        throw RecordDecodingError(description: "column '\(column)': decode a list column as [String]")
    }
    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    func decodeNil() -> Bool { value == .null }
    func decode(_ type: Bool.Type) throws -> Bool {
        guard case .integer(let n) = value, n == 0 || n == 1 else { throw Self.mismatch(value, "a boolean (0 or 1)", column) }
        return n == 1
    }
    func decode(_ type: String.Type) throws -> String {
        guard case .text(let text) = value else { throw Self.mismatch(value, "a text", column) }
        return text
    }
    func decode(_ type: Double.Type) throws -> Double {
        switch value {
        case .real(let x): return x
        case .integer(let n): return Double(n)
        default: throw Self.mismatch(value, "a number", column)
        }
    }
    func decode(_ type: Float.Type) throws -> Float { Float(try decode(Double.self)) }
    func decode(_ type: Int.Type) throws -> Int { try integer() }
    func decode(_ type: Int8.Type) throws -> Int8 { try integer() }
    func decode(_ type: Int16.Type) throws -> Int16 { try integer() }
    func decode(_ type: Int32.Type) throws -> Int32 { try integer() }
    func decode(_ type: Int64.Type) throws -> Int64 { try integer() }
    func decode(_ type: UInt.Type) throws -> UInt { try integer() }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try integer() }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try integer() }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try integer() }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try integer() }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try Self.decode(type, from: value, column: column) }

    private func integer<T: FixedWidthInteger>() throws -> T {
        guard case .integer(let n) = value, let exact = T(exactly: n) else { throw Self.mismatch(value, "a whole number", column) }
        return exact
    }
}

/// The text form of a `datetime` column: UTC, `YYYY-MM-DDTHH:MM:SS[.fff]Z`.
enum DateTimeText {
    static func date(_ text: String) -> Date? {
        let withFraction = ISO8601DateFormatter()
        withFraction.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return withFraction.date(from: text) ?? ISO8601DateFormatter().date(from: text)
    }

    static func text(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}
