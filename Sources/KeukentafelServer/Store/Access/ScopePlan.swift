import KeukentafelProtocol

/// The data model's scope rules, turned into the lookups the store needs while it keeps
/// `row_scopes` current: which cells can change a row's scopes, and which rows derive their scopes
/// from a row. Built once per model; pure.
struct ScopePlan: Sendable {
    /// How a table's rows get their scopes.
    enum Rule: Sendable, Equatable {
        /// Reference data: visible to everyone, no row scopes.
        case global
        /// `COLUMN:value` of the row's own column.
        case own(column: String)
        /// The scopes of the row a reference column points to.
        case parent(column: String, table: String)
        /// The union of the scopes of the rows of `table` whose `column` points here.
        case referencedBy(table: String, column: String)
    }

    /// A row whose scopes derive from a row of another table.
    enum Dependent: Sendable, Equatable {
        /// Rows of `table` whose `column` holds the source row's id (a visit of a case).
        case children(table: String, column: String)
        /// The row of `table` that the source row's `column` points to (the resident of a case).
        case referenced(table: String, column: String)
    }

    let rules: [String: Rule]
    let depths: [String: Int]
    /// Per table, the rows that must be re-scoped when one of its rows' scopes change.
    let dependents: [String: [Dependent]]
    /// Per table, the columns whose change can change some row's scopes or visibility.
    let triggerColumns: [String: Set<String>]
    /// The tables whose rows are in no scope (every device may see them), sorted.
    let globalTables: [String]

    init(_ model: DataModel) {
        var rules: [String: Rule] = [:]
        var dependents: [String: [Dependent]] = [:]
        var triggers: [String: Set<String>] = [:]
        for table in model.tables {
            let scope = table.scope
            if let own = scope?.own {
                rules[table.name] = .own(column: own)
                triggers[table.name, default: []].insert(own)
            } else if let parent = scope?.parent, let target = table.column(named: parent)?.references {
                rules[table.name] = .parent(column: parent, table: target)
                triggers[table.name, default: []].insert(parent)
                dependents[target, default: []].append(.children(table: table.name, column: parent))
            } else if let via = scope?.referencedBy {
                let parts = via.split(separator: ".").map(String.init)
                rules[table.name] = .referencedBy(table: parts[0], column: parts[1])
                triggers[parts[0], default: []].insert(parts[1])
                dependents[parts[0], default: []].append(.referenced(table: table.name, column: parts[1]))
            } else {
                rules[table.name] = .global
            }
            if let flag = table.confidentialWhen { triggers[table.name, default: []].insert(flag) }
        }
        self.rules = rules
        self.globalTables = model.tables.map(\.name).filter { rules[$0] == .global }.sorted()
        self.depths = model.scopeDepths() ?? [:]
        self.dependents = dependents
        self.triggerColumns = triggers
    }

    func isGlobal(_ table: String) -> Bool { rules[table].map { $0 == .global } ?? true }
}
