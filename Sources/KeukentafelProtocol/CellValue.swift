/// The value of one cell, as stored in SQLite and carried in JSON.
///
/// Booleans are integers 0/1 and dates are ISO-8601 text, as in SQLite; the data model in
/// `Schemas/` says which column holds which.
public enum CellValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
}

extension CellValue {
    /// The integer, or nil for any other kind of value.
    public var int64: Int64? {
        if case .integer(let v) = self { return v }
        return nil
    }

    /// The text, or nil for any other kind of value.
    public var string: String? {
        if case .text(let v) = self { return v }
        return nil
    }
}

extension CellValue: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let int = try? container.decode(Int64.self) {
            self = .integer(int)
        } else if let double = try? container.decode(Double.self) {
            self = .real(double)
        } else if let text = try? container.decode(String.self) {
            self = .text(text)
        } else if let bool = try? container.decode(Bool.self) {
            self = .integer(bool ? 1 : 0)
        } else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "a cell value is null, a number, a string or a boolean")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .integer(let v): try container.encode(v)
        case .real(let v): try container.encode(v)
        case .text(let v): try container.encode(v)
        }
    }
}

extension CellValue: CustomStringConvertible {
    /// A short human form: text unquoted, null as `∅`.
    public var description: String {
        switch self {
        case .null: return "∅"
        case .integer(let v): return String(v)
        case .real(let v): return String(v)
        case .text(let v): return v
        }
    }
}
