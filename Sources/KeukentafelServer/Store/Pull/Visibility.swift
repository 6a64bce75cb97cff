import KeukentafelProtocol

/// What one device may see, decided row by row with `AccessRules` and remembered for one page.
struct Visibility {
    let store: ServerStore
    let access: Access
    let connection: any StoreConnection
    private var rows: [RowReference: Bool] = [:]
    /// Every row of every table, no partner profile, no confidential flags: nothing to look up.
    private let seesEverything: Bool

    init(store: ServerStore, access: Access, connection: any StoreConnection) {
        self.store = store
        self.access = access
        self.connection = connection
        self.seesEverything = access.seesEveryScope && access.role != .partner
    }

    mutating func canSee(table: String, row: String, column: String) throws -> Bool {
        guard try canSeeRow(table: table, row: row) else { return false }
        return canSeeColumn(column, of: table)
    }

    /// Whether the device may see this column of a row it may see: only a partner's profile leaves columns out.
    var seesEveryColumn: Bool { access.role != .partner }

    func canSeeColumn(_ column: String, of table: String) -> Bool {
        guard !seesEveryColumn, let model = store.dataModel.table(named: table) else { return true }
        return AccessRules.canSee(column: column, of: model, access: access, model: store.dataModel)
    }

    /// Decides for the rows of one page at once: their scopes in one query per table and window of
    /// rows, their confidential flags (`flag`, the value of the table's `confidentialWhen` column) from
    /// the records the page read. One query per row was a round trip each on PostgreSQL.
    mutating func decide(_ page: [(table: String, row: String, flag: CellValue?)]) throws {
        var scopeRows: [String: [String]] = [:]
        var undecided: [(model: DataModel.Table, reference: RowReference, flag: CellValue?)] = []
        for entry in page {
            guard let model = store.dataModel.table(named: entry.table), !(seesEverything && model.confidentialWhen == nil) else { continue }
            let reference = RowReference(table: entry.table, row: entry.row)
            guard rows[reference] == nil else { continue }
            undecided.append((model, reference, entry.flag))
            if !store.scopePlan.isGlobal(entry.table) { scopeRows[entry.table, default: []].append(entry.row) }
        }
        var scopes: [RowReference: Set<String>] = [:]
        for (table, ids) in scopeRows {
            try Records(connection, store: store).select("row_id, scope", from: "row_scopes", table: table, rows: ids) { stmt in
                if let row = stmt.text(0), let scope = stmt.text(1) { scopes[RowReference(table: table, row: row), default: []].insert(scope) }
            }
        }
        for entry in undecided {
            rows[entry.reference] = AccessRules.canSee(table: entry.model, rowScopes: scopes[entry.reference] ?? [],
                                                       confidential: isTrue(entry.flag), access: access, model: store.dataModel)
        }
    }

    mutating func canSeeRow(table: String, row: String) throws -> Bool {
        guard let model = store.dataModel.table(named: table) else { return access.seesEveryScope }
        if seesEverything, model.confidentialWhen == nil { return true }
        let reference = RowReference(table: table, row: row)
        if let known = rows[reference] { return known }
        var scopes = Set<String>()
        if !store.scopePlan.isGlobal(table) {
            let stmt = try connection.literalStatement("SELECT scope FROM row_scopes WHERE tbl = ? AND row_id = ?")
            try stmt.bind(table, at: 1)
            try stmt.bind(row, at: 2)
            while try stmt.step() { if let scope = stmt.text(0) { scopes.insert(scope) } }
            stmt.reset()
        }
        var confidential = false
        if let flag = model.confidentialWhen {
            confidential = isTrue(try Records(connection, store: store).value(table: table, row: row, column: flag))
        }
        let visible = AccessRules.canSee(table: model, rowScopes: scopes, confidential: confidential, access: access, model: store.dataModel)
        rows[reference] = visible
        return visible
    }
}
