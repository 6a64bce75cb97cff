import Foundation

/// The synced data model: tables, their columns, and the rules every value must follow.
///
/// The source of truth is `Schemas/datamodel.yaml`. The server loads it and serves it at
/// `GET /v1/hello`; a replica stores the copy it was created with and builds its tables from it.
public struct DataModel: Codable, Sendable, Equatable {
    /// Increases whenever the model changes.
    public var version: Int
    /// Replicas with an older model may pull, but their writes are refused (`upgrade_required`).
    public var minimumClientVersion: Int?
    public var tables: [Table]
    /// What each kind of partner organisation may see and change (role `partner`); see `PartnerProfile`.
    public var partnerProfiles: [PartnerProfile]?

    public init(version: Int, minimumClientVersion: Int? = nil, tables: [Table], partnerProfiles: [PartnerProfile]? = nil) {
        self.version = version
        self.minimumClientVersion = minimumClientVersion
        self.tables = tables
        self.partnerProfiles = partnerProfiles
    }

    public func partnerProfile(named name: String) -> PartnerProfile? { partnerProfiles?.first { $0.name == name } }

    /// The tables and columns one kind of partner (the carers' centre, debt counselling) is granted.
    /// Everything else never reaches a partner's device, and a partner's write to it is refused.
    public struct PartnerProfile: Codable, Sendable, Equatable {
        public var name: String
        public var description: String?
        public var tables: [Grant]

        /// One table; `columns` absent means every column.
        public struct Grant: Codable, Sendable, Equatable {
            public var table: String
            public var columns: [String]?

            public init(table: String, columns: [String]? = nil) {
                self.table = table
                self.columns = columns
            }
        }

        public init(name: String, description: String? = nil, tables: [Grant]) {
            self.name = name
            self.description = description
            self.tables = tables
        }

        public func grant(for table: String) -> Grant? { tables.first { $0.table == table } }
    }

    public func table(named name: String) -> Table? { tables.first { $0.name == name } }

    public struct Table: Codable, Sendable, Equatable {
        public var name: String
        public var description: String?
        /// Rows are only ever added (visit notes, contact moments); their cells never conflict.
        public var appendOnly: Bool?
        /// Who may see the rows; see `Scope`.
        public var scope: Scope?
        /// Rows that should not exist twice (one appreciation per carer per year). Two such rows made
        /// on different devices are both kept and flagged for review as a `duplicate` conflict.
        public var unique: [UniqueKey]?
        /// A boolean column; while it is true the row is confidential: visible only to consultants and
        /// back office who hold one of the row's scopes themselves (not through `*`), never to partners.
        public var confidentialWhen: String?
        public var columns: [Column]

        public init(name: String, description: String? = nil, appendOnly: Bool? = nil, scope: Scope? = nil, columns: [Column]) {
            self.name = name
            self.description = description
            self.appendOnly = appendOnly
            self.scope = scope
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
        /// How personal the data is (AVG/GDPR); default `ordinary`.
        public var pii: PIIClass?
        /// For `integer` and `real`: inclusive bounds.
        public var minimum: Double?
        public var maximum: Double?
        /// For `list`: the most items (default 50).
        public var maxItems: Int?
        /// For `attachment`: the media types allowed (`image/jpeg`, or `image/*`); absent allows any.
        public var mediaTypes: [String]?
        /// For `attachment`: the largest content in bytes (default 25 MB, `DataModel.defaultMaxAttachmentBytes`).
        public var maxBytes: Int64?
        /// For `attachment`: when devices fetch the content (default `onDemand`).
        public var download: AttachmentDownload?

        public init(name: String, type: ColumnType, description: String? = nil, maxLength: Int? = nil,
                    values: [String]? = nil, references: String? = nil, required: Bool? = nil, policy: Policy? = nil,
                    pii: PIIClass? = nil, minimum: Double? = nil, maximum: Double? = nil, maxItems: Int? = nil,
                    mediaTypes: [String]? = nil, maxBytes: Int64? = nil, download: AttachmentDownload? = nil) {
            self.name = name
            self.type = type
            self.description = description
            self.maxLength = maxLength
            self.values = values
            self.references = references
            self.required = required
            self.policy = policy
            self.pii = pii
            self.minimum = minimum
            self.maximum = maximum
            self.maxItems = maxItems
            self.mediaTypes = mediaTypes
            self.maxBytes = maxBytes
            self.download = download
        }
    }

    /// When a device fetches an attachment's content.
    public enum AttachmentDownload: String, Codable, Sendable {
        /// With every sync, for the rows the device holds (a case's signed plan).
        case eager
        /// Only when the app asks for it (`SyncEngine.openAttachment`, `kt attachments get`).
        case onDemand
    }

    /// Columns whose values together identify a row, optionally only while a status column has one
    /// of some values (a volunteer has one *active* match).
    public struct UniqueKey: Codable, Sendable, Equatable {
        public var columns: [String]
        public var whenColumn: String?
        public var whenValues: [String]?

        public init(columns: [String], whenColumn: String? = nil, whenValues: [String]? = nil) {
            self.columns = columns
            self.whenColumn = whenColumn
            self.whenValues = whenValues
        }
    }

    /// Who may see a table's rows. Exactly one field is set.
    public struct Scope: Codable, Sendable, Equatable {
        /// Reference data: every device sees it.
        public var global: Bool?
        /// The row's own column holds the scope key (a team or municipality code).
        public var own: String?
        /// The row is visible where the row this reference column points to is.
        public var parent: String?
        /// `TABLE.COLUMN`: visible wherever a row of TABLE whose COLUMN points here is visible.
        public var referencedBy: String?

        public init(global: Bool? = nil, own: String? = nil, parent: String? = nil, referencedBy: String? = nil) {
            self.global = global
            self.own = own
            self.parent = parent
            self.referencedBy = referencedBy
        }
    }

    public enum PIIClass: String, Codable, Sendable {
        /// Not about a person in particular.
        case ordinary
        /// Identifies a person: name, BSN, address, phone, birth date.
        case direct
        /// A special category under the AVG: health, safety, the contents of conversations.
        case special
    }

    public enum ColumnType: String, Codable, Sendable {
        case text, integer, real, boolean, date, datetime
        case `enum`
        case reference
        /// A list of strings, stored as a JSON array in TEXT, e.g. `["wmo","jeugd"]`.
        case list
        /// A file (photo, scan, signed document): the cell holds an `AttachmentReference` as JSON text,
        /// the bytes travel apart (decision 0026).
        case attachment

        /// The SQLite column type on a replica.
        public var sqliteType: String {
            switch self {
            case .integer, .boolean: return "INTEGER"
            case .real: return "REAL"
            case .text, .date, .datetime, .enum, .reference, .list, .attachment: return "TEXT"
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
    public init(description: String) { self.description = description }
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
                if let low = column.minimum, let high = column.maximum, low > high {
                    errors.append("column '\(at)': minimum \(low) is greater than maximum \(high)")
                }
                if (column.minimum != nil || column.maximum != nil), column.type != .integer, column.type != .real {
                    errors.append("column '\(at)': minimum and maximum apply to integer and real columns only")
                }
                if column.values != nil, column.type != .enum, column.type != .list {
                    errors.append("column '\(at)': values apply to enum and list columns only")
                }
                if column.type != .attachment, column.mediaTypes != nil || column.maxBytes != nil || column.download != nil {
                    errors.append("column '\(at)': mediaTypes, maxBytes and download apply to attachment columns only")
                }
                if let max = column.maxBytes, max <= 0 || max > DataModel.largestAttachmentBytes {
                    errors.append("column '\(at)': maxBytes must be from 1 to \(DataModel.largestAttachmentBytes)")
                }
                for type in column.mediaTypes ?? [] where !isMediaType(type.hasSuffix("/*") ? String(type.dropLast()) + "x" : type) {
                    errors.append("column '\(at)': '\(type)' is not a media type (such as image/jpeg or image/*)")
                }
            }
            if let scope = table.scope { errors += checkScope(scope, of: table) }
            if let flag = table.confidentialWhen, table.column(named: flag)?.type != .boolean {
                errors.append("table '\(table.name)': confidentialWhen must name a boolean column of the table")
            }
            for key in table.unique ?? [] {
                for column in key.columns + [key.whenColumn].compactMap({ $0 }) where table.column(named: column) == nil {
                    errors.append("table '\(table.name)': unique key names column '\(column)', which the table does not have")
                }
                if key.columns.isEmpty { errors.append("table '\(table.name)': a unique key needs columns") }
            }
        }
        if errors.isEmpty, scopeDepths() == nil {
            errors.append("the scope rules form a cycle (a table's rows would be visible where they themselves are visible)")
        }
        for profile in partnerProfiles ?? [] {
            for grant in profile.tables {
                guard let table = table(named: grant.table) else {
                    errors.append("partner profile '\(profile.name)' grants table '\(grant.table)', which does not exist")
                    continue
                }
                for column in grant.columns ?? [] where table.column(named: column) == nil {
                    errors.append("partner profile '\(profile.name)' grants column '\(grant.table).\(column)', which does not exist")
                }
            }
        }
        if !errors.isEmpty { throw DataModelError(description: errors.joined(separator: "\n")) }
    }

    /// How far each table is from a scope source: 0 for `global` and `own`, one more than the table
    /// a `parent` column or a `referencedBy` table derives from. Rows are re-scoped in this order, so a
    /// row is always computed after everything it derives from. `nil` if the rules form a cycle.
    public func scopeDepths() -> [String: Int]? {
        var depths: [String: Int] = [:]
        var visiting = Set<String>()
        func depth(_ name: String) -> Int? {
            if let known = depths[name] { return known }
            guard let table = table(named: name), visiting.insert(name).inserted else { return nil }
            defer { visiting.remove(name) }
            var result = 0
            if let parent = table.scope?.parent {
                guard let target = table.column(named: parent)?.references, let d = depth(target) else { return nil }
                result = d + 1
            } else if let via = table.scope?.referencedBy {
                guard let source = via.split(separator: ".").first, let d = depth(String(source)) else { return nil }
                result = d + 1
            }
            depths[name] = result
            return result
        }
        for table in tables where depth(table.name) == nil { return nil }
        return depths
    }
}

extension DataModel {
    /// What in this model would break devices that still use `old`. A new version may add tables,
    /// columns and enum values; it may not remove or rename them, or change a column's type.
    public func evolutionProblems(from old: DataModel) -> [String] {
        var problems: [String] = []
        if version < old.version { problems.append("version \(version) is older than \(old.version)") }
        if version == old.version, self != old { problems.append("the model changed but its version is still \(version)") }
        for oldTable in old.tables {
            guard let table = table(named: oldTable.name) else {
                problems.append("table '\(oldTable.name)' was removed")
                continue
            }
            for oldColumn in oldTable.columns {
                guard let column = table.column(named: oldColumn.name) else {
                    problems.append("column '\(oldTable.name).\(oldColumn.name)' was removed")
                    continue
                }
                if column.type != oldColumn.type {
                    problems.append("column '\(oldTable.name).\(oldColumn.name)' changed type from \(oldColumn.type) to \(column.type)")
                }
                for value in oldColumn.values ?? [] where !(column.values ?? []).contains(value) {
                    problems.append("value '\(value)' of '\(oldTable.name).\(oldColumn.name)' was removed")
                }
            }
        }
        return problems
    }

    func checkScope(_ scope: Scope, of table: Table) -> [String] {
        let at = "table '\(table.name)': scope"
        let set = [scope.global == true, scope.own != nil, scope.parent != nil, scope.referencedBy != nil].filter { $0 }.count
        guard set == 1 else { return ["\(at) needs exactly one of global, own, parent, referencedBy"] }
        if let own = scope.own, table.column(named: own) == nil {
            return ["\(at) 'own: \(own)' names a column the table does not have"]
        }
        if let parent = scope.parent {
            guard let column = table.column(named: parent), column.type == .reference else {
                return ["\(at) 'parent: \(parent)' must name a reference column of the table"]
            }
        }
        if let via = scope.referencedBy {
            let parts = via.split(separator: ".").map(String.init)
            guard parts.count == 2, let other = self.table(named: parts[0]), let column = other.column(named: parts[1]),
                  column.type == .reference, column.references == table.name
            else { return ["\(at) 'referencedBy: \(via)' must name TABLE.COLUMN, a reference to '\(table.name)'"] }
        }
        return []
    }
}

func isPlainIdentifier(_ name: String) -> Bool {
    guard let first = name.utf8.first, (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first), name.utf8.count <= 63 else { return false }
    return name.utf8.allSatisfy { ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || $0 == UInt8(ascii: "_") }
}

extension DataModel {
    /// Decodes and checks a model from JSON (the form `GET /v1/hello` serves).
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
