import Foundation
import KeukentafelProtocol

/// Encodes an `Encodable` value into column name → value, in the order its properties are encoded:
/// the inverse of `RowDecoder`. A property that is `nil` is left out when the type encodes it with
/// `encodeIfPresent` (the synthesized default): an insert leaves that column unset, an update leaves
/// it as it is.
final class RowEncoder: Encoder {
    var codingPath: [any CodingKey] = []
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    private(set) var columns: [(name: String, value: CellValue)] = []
    var failure: RecordEncodingError?

    func set(_ name: String, _ value: CellValue) {
        if let index = columns.firstIndex(where: { $0.name == name }) { columns[index].value = value } else { columns.append((name, value)) }
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(Keyed<Key>(encoder: self))
    }
    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        failure = RecordEncodingError(description: "a record encodes as named properties, not a list")
        return CellEncoder(column: "").unkeyedContainer()
    }
    func singleValueContainer() -> any SingleValueEncodingContainer {
        failure = RecordEncodingError(description: "a record encodes as named properties, not a single value")
        return CellEncoder(column: "")
    }

    struct Keyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let encoder: RowEncoder
        var codingPath: [any CodingKey] = []

        mutating func encodeNil(forKey key: Key) throws { encoder.set(key.stringValue, .null) }
        mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
            encoder.set(key.stringValue, try CellEncoder.encode(value, column: key.stringValue))
        }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
            encoder.failure = RecordEncodingError(description: "property '\(key.stringValue)' is a nested record; a column holds one value")
            return RowEncoder().container(keyedBy: keyType)
        }
        mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
            encoder.failure = RecordEncodingError(description: "property '\(key.stringValue)': a list column is encoded from [String]")
            return CellEncoder(column: key.stringValue).unkeyedContainer()
        }
        mutating func superEncoder() -> any Encoder { encoder }
        mutating func superEncoder(forKey key: Key) -> any Encoder { encoder }
    }
}

public struct RecordEncodingError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// One Swift value as a cell.
final class CellEncoder: Encoder, SingleValueEncodingContainer {
    let column: String
    var value: CellValue = .null
    var codingPath: [any CodingKey] = []
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(column: String) { self.column = column }

    static func encode<T: Encodable>(_ value: T, column: String) throws -> CellValue {
        if let date = value as? Date { return .text(DateTimeText.text(date)) }
        if let list = value as? [String] { return .text(String(decoding: try JSONEncoder().encode(list), as: UTF8.self)) }
        let encoder = CellEncoder(column: column)
        try value.encode(to: encoder)
        return encoder.value
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> { RowEncoder().container(keyedBy: type) }
    func unkeyedContainer() -> any UnkeyedEncodingContainer { Unsupported(column: column) }
    func singleValueContainer() -> any SingleValueEncodingContainer { self }

    func encodeNil() throws { value = .null }
    func encode(_ value: Bool) throws { self.value = .integer(value ? 1 : 0) }
    func encode(_ value: String) throws { self.value = .text(value) }
    func encode(_ value: Double) throws { self.value = .real(value) }
    func encode(_ value: Float) throws { self.value = .real(Double(value)) }
    func encode(_ value: Int) throws { self.value = .integer(Int64(value)) }
    func encode(_ value: Int8) throws { self.value = .integer(Int64(value)) }
    func encode(_ value: Int16) throws { self.value = .integer(Int64(value)) }
    func encode(_ value: Int32) throws { self.value = .integer(Int64(value)) }
    func encode(_ value: Int64) throws { self.value = .integer(value) }
    func encode(_ value: UInt) throws { self.value = .integer(try Self.exact(value, column)) }
    func encode(_ value: UInt8) throws { self.value = .integer(Int64(value)) }
    func encode(_ value: UInt16) throws { self.value = .integer(Int64(value)) }
    func encode(_ value: UInt32) throws { self.value = .integer(Int64(value)) }
    func encode(_ value: UInt64) throws { self.value = .integer(try Self.exact(value, column)) }
    func encode<T: Encodable>(_ value: T) throws { self.value = try Self.encode(value, column: column) }

    private static func exact<T: BinaryInteger>(_ value: T, _ column: String) throws -> Int64 {
        guard let exact = Int64(exactly: value) else { throw RecordEncodingError(description: "column '\(column)': \(value) does not fit SQLite's integers") }
        return exact
    }

    /// Lists other than `[String]` have no column type to go to.
    struct Unsupported: UnkeyedEncodingContainer {
        let column: String
        var codingPath: [any CodingKey] = []
        var count = 0
        private func refuse() -> RecordEncodingError { RecordEncodingError(description: "column '\(column)': only [String] encodes as a list column") }
        mutating func encodeNil() throws { throw refuse() }
        mutating func encode<T: Encodable>(_ value: T) throws { throw refuse() }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
            RowEncoder().container(keyedBy: keyType)
        }
        mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer { self }
        mutating func superEncoder() -> any Encoder { RowEncoder() }
    }
}
