import KeukentafelProtocol
import KeukentafelSQLite

/// Keeping `row_scopes` current while a push applies.
///
/// A cell that can change scopes (an `own` column, a `parent` reference, a reference another table is
/// `referencedBy`, a `confidentialWhen` flag) marks rows for re-scoping as it is written. At the end
/// of the batch, `rescope()` recomputes them in scope-depth order (a case before its visits), and for
/// every row whose scopes changed:
/// - a lost scope becomes an eviction in the feed, so devices of that scope delete the row;
/// - a gained scope gives the row's existing cells new sequence numbers, so devices of that scope
///   receive its current state on their next pull (and nobody re-downloads anything else);
/// - the rows that derive their scopes from it are recomputed too (visits, notes, the resident).
extension PushContext {
    /// Notes that `key` changed from `old` to `new`, if that can change scopes.
    mutating func noteScopeChange(_ key: CellKey, old: CellValue?, new: CellValue) {
        guard let tablePlan = store.pushPlans[key.table], !tablePlan.scopeTriggerColumns.isEmpty,
              tablePlan.scopeTriggerColumns.contains(key.column), old != new else { return }
        let plan = store.scopePlan
        let row = RowAddress(table: key.table, row: key.row)
        switch plan.rules[key.table] {
        case .own(let column)? where column == key.column: markForRescope(row)
        case .parent(let column, _)? where column == key.column: markForRescope(row)
        default: break
        }
        for case .referenced(let table, let column) in plan.dependents[key.table] ?? [] where column == key.column {
            for value in [old, new] { if let target = value?.string { markForRescope(RowAddress(table: table, row: target)) } }
        }
        if store.dataModel.table(named: key.table)?.confidentialWhen == key.column, old != nil, isTrue(old) != isTrue(new) {
            confidentialityChanged.insert(row)
        }
    }

    mutating func markForRescope(_ row: RowAddress) {
        rescopeQueue[store.scopePlan.depths[row.table] ?? 0, default: []].insert(row)
    }

    /// Recomputes the scopes of every row marked during the batch, and of everything that derives from them.
    mutating func rescope() throws {
        try flushWrites()  // rescoping reads references and cells from the store
        while let depth = rescopeQueue.keys.min() {
            let rows = rescopeQueue.removeValue(forKey: depth) ?? []
            var changed: [String: [String]] = [:]  // rows whose scopes changed, by table
            for row in rows.sorted(by: { ($0.table, $0.row) < ($1.table, $1.row) }) where try rescope(row) {
                changed[row.table, default: []].append(row.row)
            }
            // Their children, found with one query per child table and window of rows rather than one
            // per row (a round trip each on PostgreSQL).
            for (table, parents) in changed.sorted(by: { $0.key < $1.key }) {
                for case .children(let childTable, let column) in store.scopePlan.dependents[table] ?? [] {
                    for start in stride(from: 0, to: parents.count, by: Self.windowSize) {
                        let window = Array(parents[start..<min(start + Self.windowSize, parents.count)])
                        for child in try Records(connection, store: store).rows(of: childTable, whose: column, isAnyOf: window.map(CellValue.text)) {
                            markForRescope(RowAddress(table: childTable, row: child))
                        }
                    }
                }
            }
        }
        try writeGainedScopes()  // the authorizer reads them from the store after this
        for row in confidentialityChanged.sorted(by: { ($0.table, $0.row) < ($1.table, $1.row) }) {
            let flag = store.dataModel.table(named: row.table)?.confidentialWhen ?? ""
            if isTrue(try cells(table: row.table, row: row.row)[flag]?.value.value) {
                // Now confidential: devices that may no longer see it drop it (pull decides per device).
                for scope in try storedScopes(row) { try recordEviction(row, scope: scope, kind: "evict") }
            } else {
                try resequence(row)  // no longer confidential: devices that now see it receive it
            }
        }
        confidentialityChanged.removeAll()
        try flushWrites()  // records re-sequenced above
    }

    /// Recomputes one row's scopes; says whether they changed (then its children are rescoped too).
    private mutating func rescope(_ row: RowAddress) throws -> Bool {
        let before = try storedScopes(row)
        let after = try computeScopes(row)
        guard before != after else { return false }
        let lost = before.subtracting(after)
        if !lost.isEmpty { try writeGainedScopes() }  // a scope gained earlier in this batch may be the one lost
        for scope in lost.sorted() {
            try connection.run("DELETE FROM row_scopes WHERE tbl = ? AND row_id = ? AND scope = ?",
                               [.text(row.table), .text(row.row), .text(scope)])
            try recordEviction(row, scope: scope, kind: "evict")
        }
        let gained = after.subtracting(before)
        for scope in gained.sorted() { gainedScopes.append((row, scope)) }
        scopeCache[row] = after
        if !gained.isEmpty { try resequence(row) }
        for case .referenced(let table, let column) in store.scopePlan.dependents[row.table] ?? [] {
            if let target = try cells(table: row.table, row: row.row)[column]?.value.value.string {
                markForRescope(RowAddress(table: table, row: target))
            }
        }
        return true
    }

    /// Inserts the scopes rows gained, many rows per statement.
    mutating func writeGainedScopes() throws {
        let perStatement = 300
        for start in stride(from: 0, to: gainedScopes.count, by: perStatement) {
            let slice = gainedScopes[start..<min(start + perStatement, gainedScopes.count)]
            let stmt = try connection.cachedStatement(PendingWrites.insertSQL(
                into: "row_scopes (tbl, row_id, scope)", columns: 3, rows: slice.count, suffix: " ON CONFLICT DO NOTHING"))
            var at: Int32 = 0
            for (row, scope) in slice {
                try stmt.bind(row.table, at: at + 1)
                try stmt.bind(row.row, at: at + 2)
                try stmt.bind(scope, at: at + 3)
                at += 3
            }
            try stmt.run()
        }
        gainedScopes.removeAll(keepingCapacity: true)
    }

    /// The scopes the rules give `row` now, from the store inside this transaction.
    mutating func computeScopes(_ row: RowAddress) throws -> Set<String> {
        switch store.scopePlan.rules[row.table] ?? .global {
        case .global:
            return []
        case .own(let column):
            guard let key = try cells(table: row.table, row: row.row)[column]?.value.value.string, !key.isEmpty else { return [] }
            return ["\(column):\(key)"]
        case .parent(let column, let table):
            guard let target = try cells(table: row.table, row: row.row)[column]?.value.value.string else { return [] }
            return try storedScopes(RowAddress(table: table, row: target))
        case .referencedBy(let table, let column):
            var scopes = Set<String>()
            for source in try rows(of: table, whose: column, is: row.row) {
                scopes.formUnion(try storedScopes(RowAddress(table: table, row: source)))
            }
            return scopes
        }
    }

    mutating func storedScopes(_ row: RowAddress) throws -> Set<String> {
        if let cached = scopeCache[row] { return cached }
        if rowsNewInBatch.contains(row) { return [] }  // rescoping gives a row its first scopes
        let stmt = try connection.literalStatement("SELECT scope FROM row_scopes WHERE tbl = ? AND row_id = ?")
        defer { stmt.reset() }
        try stmt.bind(row.table, at: 1)
        try stmt.bind(row.row, at: 2)
        var scopes = Set<String>()
        while try stmt.step() { if let scope = stmt.text(0) { scopes.insert(scope) } }
        scopeCache[row] = scopes
        return scopes
    }

    /// Ids of the rows of `table` whose reference `column` holds `id` (through the row links).
    func rows(of table: String, whose column: String, is id: String) throws -> [String] {
        try Records(connection, store: store).rows(of: table, whose: column, is: id)
    }

    mutating func recordEviction(_ row: RowAddress, scope: String, kind: String) throws {
        let stmt = try connection.literalStatement("INSERT INTO evictions (seq, tbl, row_id, scope, at_ms, kind) VALUES (?, ?, ?, ?, ?, ?)")
        try stmt.bind([.integer(nextSequence()), .text(row.table), .text(row.row), .text(scope), .integer(nowMilliseconds), .text(kind)])
        try stmt.run()
        footprint.scopes.insert(scope)  // the devices of the scope it left must hear of it
        touch(row, column: Merge.deletedColumn)
    }

    /// New sequence numbers for the row's cells that are older than this batch, so the feed carries them again.
    mutating func resequence(_ row: RowAddress) throws {
        if rowsNewInBatch.contains(row) { return }  // all its cells are of this batch and in the feed already
        let cached = try cachedRow(table: row.table, row: row.row)
        let older = cached.cells.filter { $0.value.sequence <= batchStartSequence }.map(\.key).sorted()
        guard !older.isEmpty else { return }
        for column in older {
            cached.cells[column]?.sequence = nextSequence()
            touch(row, column: column)
        }
        try pending.write(row, cached, connection)
    }
}

func isTrue(_ value: CellValue?) -> Bool {
    switch value {
    case .integer(let v)?: return v != 0
    case .real(let v)?: return v != 0
    default: return false
    }
}
