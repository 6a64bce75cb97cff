import KeukentafelProtocol

extension QueryResult {
    /// The rows decoded into a `Decodable` type, columns matched by coding key, as `Replica.fetch`
    /// does: for an observed query whose screen works with typed records.
    public func decode<T: Decodable>(_ type: T.Type) throws -> [T] {
        try rows.map { row in
            try T(from: RowDecoder(row: Dictionary(zip(columns, row), uniquingKeysWith: { first, _ in first })))
        }
    }
}
