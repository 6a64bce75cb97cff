import Foundation

/// The synced data model: tables, their columns, and the rules every value must follow.
///
/// The source of truth is `Schemas/datamodel.json`. The server loads it and serves it at
/// `GET /v1/hello`; a replica stores the copy it was created with and builds its tables from it.
public struct DataModel: Codable, Sendable, Equatable {
    /// Increases whenever the model changes.
    public var version: Int
    public var tables: [Table]

    public init(version: Int, tables: [Table]) {
        self.version = version
        self.tables = tables
    }

    public func table(named name: String) -> Table? { tables.first { $0.name == name } }

    public struct Table: Codable, Sendable, Equatable {
        public var name: String
        public var description: String?
        /// Rows are only ever added (visit notes, contact moments); their cells never conflict.
        public var appendOnly: Bool?
        public var columns: [Column]

        public init(name: String, description: String? = nil, appendOnly: Bool? = nil, columns: [Column]) {
            self.name = name
            self.description = description
            self.appendOnly = appendOnly
            self.columns = columns
        }

        public func column(named name: String) -> Column? { columns.first { $0.name == name } }
    }

    public struct Column: Codable, Sendable, Equatable {
        public var name: String
        public var type: ColumnType
        public var description: String?
        /// For `text`: the greatest number of characters (Unicode scalars).
        public var maxLength: Int?
        /// For `enum`: the allowed values.
        public var values: [String]?
        /// For `reference`: the table whose row id this column holds.
        public var references: String?
        public var required: Bool?
        /// `lww` (default), `review` (conflicts go to a person) or `immutable` (fixed once set).
        public var policy: Policy?

        public init(name: String, type: ColumnType, description: String? = nil, maxLength: Int? = nil,
                    values: [String]? = nil, references: String? = nil, required: Bool? = nil, policy: Policy? = nil) {
            self.name = name
            self.type = type
            self.description = description
            self.maxLength = maxLength
            self.values = values
            self.references = references
            self.required = required
            self.policy = policy
        }
    }

    public enum ColumnType: String, Codable, Sendable {
        case text, integer, real, boolean, date, datetime
        case `enum`
        case reference

        /// The SQLite column type on a replica.
        public var sqliteType: String {
            switch self {
            case .integer, .boolean: return "INTEGER"
            case .real: return "REAL"
            case .text, .date, .datetime, .enum, .reference: return "TEXT"
            }
        }
    }

    public enum Policy: String, Codable, Sendable {
        case lww, review, immutable
    }
}

/// A reason a data model file cannot be used.
public struct DataModelError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

extension DataModel {
    /// Checks the model for mistakes a person editing the file can make, naming table and column.
    public func check() throws {
        var errors: [String] = []
        var seenTables = Set<String>()
        for table in tables {
            if !isPlainIdentifier(table.name) { errors.append("table '\(table.name)': a name is lowercase letters, digits and '_'") }
            if !seenTables.insert(table.name).inserted { errors.append("table '\(table.name)' is defined twice") }
            var seenColumns = Set<String>()
            for column in table.columns {
                let at = "\(table.name).\(column.name)"
                if !isPlainIdentifier(column.name) || column.name == "id" {
                    errors.append("column '\(at)': a name is lowercase letters, digits and '_', and 'id' is reserved")
                }
                if !seenColumns.insert(column.name).inserted { errors.append("column '\(at)' is defined twice") }
                if column.type == .enum, (column.values ?? []).isEmpty {
                    errors.append("column '\(at)': an enum needs a non-empty 'values' list")
                }
                if column.type == .reference {
                    guard let target = column.references else {
                        errors.append("column '\(at)': a reference needs 'references' naming a table")
                        continue
                    }
                    if !tables.contains(where: { $0.name == target }) {
                        errors.append("column '\(at)' references table '\(target)', which does not exist")
                    }
                }
                if let max = column.maxLength, max <= 0 { errors.append("column '\(at)': maxLength must be positive") }
            }
        }
        if !errors.isEmpty { throw DataModelError(description: errors.joined(separator: "\n")) }
    }
}

func isPlainIdentifier(_ name: String) -> Bool {
    guard let first = name.utf8.first, (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first), name.utf8.count <= 63 else { return false }
    return name.utf8.allSatisfy { ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || $0 == UInt8(ascii: "_") }
}

extension DataModel {
    /// Decodes and checks a model from the JSON of `Schemas/datamodel.json`.
    public init(json: Data) throws {
        let model: DataModel
        do {
            model = try JSONDecoder().decode(DataModel.self, from: json)
        } catch {
            throw DataModelError(description: "the data model is not valid JSON of the expected shape: \(error)")
        }
        try model.check()
        self = model
    }
}
