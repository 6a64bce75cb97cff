import KeukentafelProtocol

/// What the push path asks of a table for every change, looked up once per store instead of
/// searched for in the data model per change (the searches copied whole table and column
/// descriptions, which showed in profiles of the ingest).
final class TablePushPlan: Sendable {
    let table: DataModel.Table
    /// Columns with policy `immutable`: fixed once set.
    let immutableColumns: Set<String>
    /// Columns whose writes can change a row's scopes (see `ScopePlan.triggerColumns`).
    let scopeTriggerColumns: Set<String>
    let appendOnly: Bool
    let hasUniqueKeys: Bool
    /// Reference columns and the tables they point to (decision 0017 checks every link).
    let referenceTargets: [String: String]
    /// The column that gives the row its scope (`own`), or that it takes its scope through (`parent`).
    let scopeColumn: String?
    /// Columns that refer to attachments: a change may only refer to content on the server.
    let attachmentColumns: Set<String>

    init(_ table: DataModel.Table, scopePlan: ScopePlan) {
        self.table = table
        referenceTargets = Dictionary(table.columns.compactMap { column in column.references.map { (column.name, $0) } }) { first, _ in first }
        switch scopePlan.rules[table.name] {
        case .own(let column)?, .parent(let column, _)?: scopeColumn = column
        default: scopeColumn = nil
        }
        attachmentColumns = Set(table.columns.filter { $0.type == .attachment }.map(\.name))
        immutableColumns = Set(table.columns.filter { $0.policy == .immutable }.map(\.name))
        scopeTriggerColumns = scopePlan.triggerColumns[table.name] ?? []
        appendOnly = table.appendOnly == true
        hasUniqueKeys = !(table.unique ?? []).isEmpty
    }
}
