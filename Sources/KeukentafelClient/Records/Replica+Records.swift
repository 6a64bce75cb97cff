import Foundation
import KeukentafelProtocol

/// Typed records: rows decode into `Decodable` types and `Encodable` values are inserted and updated,
/// columns named by coding keys. Values are checked against the data model as for any write.
///
/// ```swift
/// struct Case: Codable {
///     var id: String
///     var resident_id: String
///     var team: String
///     var status: String?
///     var question: String?
/// }
/// try replica.insert(Case(id: RowID.new(), resident_id: resident, team: "castricum-noord", status: "melding", question: nil), into: "cases")
/// let open = try replica.fetch(Case.self, "SELECT * FROM cases WHERE status <> 'closed'")
/// ```
extension Replica {
    /// Every row of a query, decoded (see `RowDecoder` for the types a property may have).
    public func fetch<T: Decodable>(_ type: T.Type, _ sql: String, _ arguments: [CellValue] = []) throws -> [T] {
        let result = try query(sql, arguments)
        return try result.rows.map { row in
            try T(from: RowDecoder(row: Dictionary(zip(result.columns, row), uniquingKeysWith: { first, _ in first })))
        }
    }

    /// The first row of a query, decoded, or nil.
    public func fetchOne<T: Decodable>(_ type: T.Type, _ sql: String, _ arguments: [CellValue] = []) throws -> T? {
        try fetch(type, sql, arguments).first
    }

    /// Inserts a record: its `id` and every property it encodes (a nil optional leaves the column unset).
    public func insert<T: Encodable>(_ record: T, into table: String) throws {
        let (model, columns) = try encode(record, for: table)
        let names = columns.map { ReplicaSchema.quote($0.name) }.joined(separator: ", ")
        let marks = Array(repeating: "?", count: columns.count).joined(separator: ", ")
        try execute("INSERT INTO \(ReplicaSchema.quote(model.name)) (\(names)) VALUES (\(marks))", columns.map(\.value))
    }

    /// Updates the row with the record's `id`: every property it encodes except the id (a nil optional
    /// leaves the column as it is). Fails if there is no such row.
    public func update<T: Encodable>(_ record: T, in table: String) throws {
        let (model, columns) = try encode(record, for: table)
        guard let id = columns.first(where: { $0.name == "id" })?.value else {
            throw ReplicaError.notInModel("a record updated in \(table) needs its id")
        }
        let set = columns.filter { $0.name != "id" }
        guard !set.isEmpty else { return }
        try transaction {
            try execute("UPDATE \(ReplicaSchema.quote(model.name)) SET \(set.map { "\(ReplicaSchema.quote($0.name)) = ?" }.joined(separator: ", ")) WHERE id = ?",
                        set.map(\.value) + [id])
            guard case .integer(1)? = try query("SELECT changes()").rows.first?.first else {
                throw ReplicaError.notInModel("no row \(id) in \(table) to update; insert it instead")
            }
        }
    }

    private func encode<T: Encodable>(_ record: T, for table: String) throws -> (DataModel.Table, [(name: String, value: CellValue)]) {
        guard let model = dataModel.table(named: table) else {
            let guess = DataModel.nearest(table, among: dataModel.tables.map(\.name)).map { " (did you mean '\($0)'?)" } ?? ""
            throw ReplicaError.notInModel("no table '\(table)' in the data model\(guess)")
        }
        let encoder = RowEncoder()
        try record.encode(to: encoder)
        if let failure = encoder.failure { throw failure }
        for column in encoder.columns where column.name != "id" && model.column(named: column.name) == nil {
            let guess = DataModel.nearest(column.name, among: model.columns.map(\.name)).map { " (did you mean '\($0)'?)" } ?? ""
            throw ReplicaError.notInModel("\(table) has no column '\(column.name)'\(guess); rename the property or give it a CodingKey")
        }
        return (model, encoder.columns)
    }
}
