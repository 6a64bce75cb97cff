import KeukentafelProtocol

/// Reading what a window of a push needs from the store in a few statements instead of two per
/// change: the change ids seen before, and the current cells of the rows the window writes to.
extension PushContext {
    /// Changes applied one window at a time: large enough that the reads are a few statements, small
    /// enough that one window's ids fit in a statement on both databases.
    static let windowSize = 500

    /// Reads the earlier results of the window's change ids and the cells of its rows not yet cached.
    mutating func prefetch(_ changes: [Change], _ window: Range<Int>, refused: [Int: ChangeRejection]) throws {
        if rowCache.count > 50_000 {  // bound memory on huge batches; nothing is unwritten between windows
            rowCache.removeAll(keepingCapacity: true)
            lastRow = nil
        }
        earlier.removeAll(keepingCapacity: true)
        repeatedIDs.removeAll(keepingCapacity: true)
        var ids: [String] = []
        ids.reserveCapacity(window.count)
        // A device's change ids are `<node>-<zero-padded counter>`: in a batch they ascend. Ascending
        // ids are all different, and whether any was seen before is one range probe on SQLite.
        var ascending = true
        var uncachedRows: [String: [String]] = [:]
        var previous: (table: String, row: String)?
        for index in window where refused.isEmpty || refused[index] == nil {
            let change = changes[index]
            if ascending, let last = ids.last, !last.utf8.lexicographicallyPrecedes(change.id.utf8) { ascending = false }
            ids.append(change.id)
            if let previous, previous.row == change.row, previous.table == change.table { continue }
            previous = (change.table, change.row)
            if rowCache[RowAddress(table: change.table, row: change.row)] == nil {
                uncachedRows[change.table, default: []].append(change.row)
            }
        }
        guard !ids.isEmpty else { return }
        if !ascending {
            var seen = Set<String>(minimumCapacity: ids.count)
            for id in ids where !seen.insert(id).inserted { repeatedIDs.insert(id) }
        }
        try readUncachedRows(uncachedRows)
        if ascending, connection.dialect == .sqlite, !(try anyChangeID(from: ids[0], to: ids[ids.count - 1])) { return }

        let idQuery = try connection.cachedStatement(
            "SELECT change_id, tbl, row_id, col, hlc, node, status, won, conflict_id FROM changes WHERE change_id IN "
                + Self.placeholders(ids.count))
        for (offset, id) in ids.enumerated() { try idQuery.bind(id, at: Int32(offset + 1)) }
        while try idQuery.step() {
            if let id = idQuery.text(0) { earlier[id] = EarlierChange(idQuery) }
        }
        idQuery.reset()
    }

    /// Whether the history holds a change id from `low` to `high` (byte order, SQLite's `BINARY`).
    /// Not on PostgreSQL, whose text order follows the database's collation.
    func anyChangeID(from low: String, to high: String) throws -> Bool {
        let stmt = try connection.literalStatement("SELECT 1 FROM changes WHERE change_id BETWEEN ? AND ? LIMIT 1")
        defer { stmt.reset() }
        try stmt.bind(low, at: 1)
        try stmt.bind(high, at: 2)
        return try stmt.step()
    }

    /// Reads the cells of rows not in the row cache yet, per table in one statement.
    mutating func readUncachedRows(_ uncachedRows: [String: [String]]) throws {
        for (table, rows) in uncachedRows {
            let rowQuery = try connection.cachedStatement(
                "SELECT row_id, col, value, hlc, node, device FROM cells WHERE tbl = ? AND row_id IN " + Self.placeholders(rows.count))
            try rowQuery.bind(table, at: 1)
            for (offset, row) in rows.enumerated() { try rowQuery.bind(row, at: Int32(offset + 2)) }
            var found: [String: [String: StoredCell]] = [:]
            while try rowQuery.step() {
                guard let row = rowQuery.text(0), let column = rowQuery.text(1),
                      let version = CellVersion(hlc: rowQuery.value(3), node: rowQuery.value(4)) else { continue }
                found[row, default: [:]][column] = StoredCell(value: VersionedValue(value: rowQuery.value(2), version: version),
                                                              device: rowQuery.text(5))
            }
            rowQuery.reset()
            // A new row's dictionary is made big enough at once: growing it cell by cell showed in profiles.
            let columns = store.dataModel.table(named: table)?.columns.count ?? 0
            for row in rows {
                rowCache[RowAddress(table: table, row: row)] = CachedRow(found[row] ?? Dictionary(minimumCapacity: columns + 1))
            }
        }
    }

    /// `(?, ?, …)` with `count` placeholders.
    static func placeholders(_ count: Int) -> String {
        "(?" + String(repeating: ", ?", count: count - 1) + ")"
    }
}

/// A change id's entry in the history, as far as a repeated push needs it.
struct EarlierChange {
    var table: String?
    var row: String?
    var column: String?
    var version: CellVersion?
    var status: ChangeStatus
    var won: Bool?
    var conflict: Int64?

    /// Reads the columns `change_id, tbl, row_id, col, hlc, node, status, won, conflict_id` of `stmt`'s row.
    init(_ stmt: any StoreStatement) {
        table = stmt.text(1)
        row = stmt.text(2)
        column = stmt.text(3)
        version = CellVersion(hlc: stmt.value(4), node: stmt.value(5))
        status = ChangeStatus(rawValue: stmt.text(6) ?? "") ?? .applied
        won = stmt.isNull(7) ? nil : stmt.int64(7) != 0
        conflict = stmt.isNull(8) ? nil : stmt.int64(8)
    }

    /// The answer to `change` pushed again: its first result, or a refusal if the id was used for another change.
    func result(for change: Change) -> ChangeResult {
        guard table == change.table, row == change.row, column == change.column, version == change.version else {
            return ChangeResult(id: change.id, status: .rejected, code: .changeIDReused,
                                message: "change id '\(change.id)' was already used for a different change")
        }
        return ChangeResult(id: change.id, status: status, won: won, conflict: conflict)
    }
}
