import KeukentafelProtocol

/// Changes to new rows that turned out, once the batch was applied, to lie outside the writer's scopes.
struct RefusedAfterApplying: Error {
    var refusals: [Int: ChangeRejection]
}

/// The state of one push transaction.
struct PushContext {
    let connection: any StoreConnection
    var sequence: Int64
    let device: String
    let receivedAt: String
    let store: ServerStore
    /// The sequence number before this batch: cells at or below it are older than the batch.
    let batchStartSequence: Int64
    let nowMilliseconds: Int64
    /// The pushed changes; the history buffer refers to them by position.
    let batch: [Change]
    /// The cells of every row this batch touched, read once per row and kept current by `writeCell`.
    /// Cleared only between windows, after a flush: a row with unwritten cells is always here.
    var rowCache: [RowAddress: CachedRow] = [:]
    /// Rows read before the batch was applied (by the authorizer), not yet taken into `rowCache`.
    var readBefore = RowsReadBefore()
    /// The row the previous change went to: a batch's changes come row by row.
    var lastRow: (table: String, row: String, cells: CachedRow)?
    /// What the store already knew of the change ids in the current window (see `prefetch`).
    var earlier: [String: (row: String, change: RecordedChange)] = [:]
    /// Which change ids are surely new (decision 0018).
    var marks = ChangeMarks()
    /// Change ids that come more than once in the current window.
    var repeatedIDs: Set<String> = []
    var pending: PendingWrites
    /// Rows whose scopes may have changed, by scope depth (see `rescope()`).
    var rescopeQueue: [Int: Set<RowAddress>] = [:]
    var confidentialityChanged: Set<RowAddress> = []
    /// Rows the store had no cells of when this batch first read them: they have nothing older than
    /// the batch to send again and no scopes yet, so rescoping them needs no reads (most rows of an ingest).
    var rowsNewInBatch: Set<RowAddress> = []
    /// The scopes of rows as rescoping read or wrote them in this transaction: the visits of one case
    /// all ask for the case's scopes.
    var scopeCache: [RowAddress: Set<String>] = [:]
    /// Scopes rows gained in this batch, not yet in `row_scopes` (`writeGainedScopes`).
    var gainedScopes: [(row: RowAddress, scope: String)] = []
    /// The rows this batch wrote or recorded a conflict on, and what it touched, for waking the long-polls
    /// of the devices that may see it (`finishFootprint`).
    var touchedRows: Set<RowAddress> = []
    var lastTouched: RowAddress?
    var footprint = ChangeFootprint()

    struct RowAddress: Hashable {
        var table: String
        var row: String
    }

    /// Rows of the batch as the store held them before it: their records, and those it had none of.
    /// Each is taken once (`takeReadBefore`): after that the row cache holds the row, or, once the cache
    /// was emptied between windows, the store holds what the batch wrote to it.
    struct RowsReadBefore {
        var records: [RowAddress: RowCells] = [:]
        var absent: Set<RowAddress> = []

        /// These rows, leaving none here: the push hands them to one attempt at applying the batch. An attempt
        /// undone (`RefusedAfterApplying`) reads the rows again, from the store the undo restored.
        mutating func take() -> RowsReadBefore {
            var taken = RowsReadBefore()
            swap(&taken, &self)
            return taken
        }
    }

    mutating func nextSequence() -> Int64 {
        sequence += 1
        return sequence
    }

    /// Merges `change`, which is `batch[index]`, into the store and says what became of it.
    mutating func apply(_ change: Change, at index: Int, now: Int64) throws -> ChangeResult {
        if !earlier.isEmpty, let known = earlier[change.id] { return known.change.result(for: change, row: known.row) }
        if !repeatedIDs.isEmpty, repeatedIDs.contains(change.id) {
            // Its first occurrence in this window may still be unwritten.
            try flushWrites()
            if let known = try earlierResult(of: change) { return known }
        }
        if let rejection = validateChangeID(change.id) ?? store.dataModel.validate(change) {
            return ChangeResult(id: change.id, status: .rejected, code: rejection.code, message: rejection.message)
        }
        let aheadBy = Int64(change.version.milliseconds) - now
        if aheadBy > store.maxClockSkewMilliseconds {
            return ChangeResult(
                id: change.id, status: .rejected, code: .clockAhead,
                message: "the writing device's clock is \(describeDuration(milliseconds: aheadBy)) ahead of the server "
                    + "(server time \(iso8601(now))); the change was not applied and stays on the device. "
                    + "Set the device's clock right and sync again.")
        }
        let plan = store.pushPlans[change.table]!  // validation refused unknown tables
        let table = plan.table
        let incoming = VersionedValue(value: change.value, version: change.version)
        let key = change.key
        let row = try cachedRow(table: key.table, row: key.row)
        let current = row.cells[key.column]

        var outcome: WriteOutcome
        var conflictID: Int64?
        if key.column == Merge.deletedColumn {
            outcome = Merge.classify(current: current?.value, incoming: incoming, base: current?.version)
            if case .duplicate = outcome {} else if change.value == .integer(1), let newestOther = RowState(row.cells).newestOther,
                      newestOther.version != change.base {
                // Someone edited the row after the deleter last saw it: concurrent delete and edit.
                if incoming.version > newestOther.version {
                    conflictID = try recordDeleteWins(table: table, row: key.row, deletion: incoming, deletionBase: change.base)
                    outcome = .conflict(incomingWins: true)
                } else {
                    conflictID = try recordConflict(
                        table: table, key: key,
                        winner: VersionedValue(value: .integer(0), version: newestOther.version), winnerDevice: newestOther.device,
                        loser: incoming, loserDevice: device, base: change.base, rule: "edit-wins")
                    outcome = .conflict(incomingWins: false)
                }
            }
        } else if !plan.immutableColumns.isEmpty, plan.immutableColumns.contains(key.column), let current, current.value.value != .null,
                  current.value.value != incoming.value {
            // Fixed once set (a signed plan): the later value is kept as a conflict record, never applied.
            let id = try recordConflict(table: table, key: key, winner: current.value, winnerDevice: current.device,
                                        loser: incoming, loserDevice: device, base: change.base, rule: "immutable")
            // The fixed value is re-stamped newer than the refused one, so the writer's replica (which
            // holds the newer version of its own write) takes the fixed value back, like every other.
            let restamp = CellVersion(hlc: max(incoming.version.hlc, current.version.hlc) + 1, node: store.node)
            try writeCell(key, VersionedValue(value: current.value.value, version: restamp), device: current.device)
            let result = ChangeResult(id: change.id, status: .conflict, won: false, conflict: id, code: .immutableCell,
                                      message: "\(table.name).\(key.column) is fixed once set; the new value is kept in conflict \(id)")
            try log(index, result: result)
            return result
        } else {
            outcome = Merge.classify(current: current?.value, incoming: incoming, base: change.base)
            if plan.appendOnly, case .conflict(let wins) = outcome {
                outcome = wins ? .applied : .superseded  // append-only rows never conflict
            }
            if case .conflict(let incomingWins) = outcome, let current {
                let winner = incomingWins ? incoming : current.value
                let loser = incomingWins ? current.value : incoming
                conflictID = try recordConflict(
                    table: table, key: key, winner: winner, winnerDevice: incomingWins ? device : current.device,
                    loser: loser, loserDevice: incomingWins ? current.device : device, base: change.base, rule: "lww")
            } else if case .duplicate = outcome {
            } else if row.cells[Merge.deletedColumn] != nil, case let rowBefore = RowState(row.cells), rowBefore.isDeleted,
                      let tombstone = rowBefore.tombstone {
                // An edit to a row that was deleted concurrently (the editor never saw the deletion).
                if incoming.version > tombstone.version {
                    conflictID = try recordConflict(
                        table: table, key: CellKey(table: key.table, row: key.row, column: Merge.deletedColumn),
                        winner: VersionedValue(value: .integer(0), version: incoming.version), winnerDevice: device,
                        loser: tombstone.value, loserDevice: tombstone.device, base: nil, rule: "edit-wins")
                    outcome = .conflict(incomingWins: true)
                } else {
                    conflictID = try recordConflict(
                        table: table, key: key, winner: VersionedValue(value: .null, version: tombstone.version),
                        winnerDevice: tombstone.device, loser: incoming, loserDevice: device, base: change.base, rule: "delete-wins")
                    outcome = .conflict(incomingWins: false)
                }
            }
        }

        let won: Bool
        switch outcome {
        case .applied: won = true
        case .duplicate, .superseded: won = false
        case .conflict(let incomingWins): won = incomingWins
        }
        // The cell itself always follows plain LWW, whatever the row-level bookkeeping above said.
        if case .duplicate = outcome {} else if Merge.merge(current?.value, incoming) == incoming, current?.value != incoming {
            try writeCell(key, incoming)
        }

        if won, plan.hasUniqueKeys, let duplicate = try checkDuplicates(after: change, in: table) {
            conflictID = conflictID ?? duplicate
        }

        let result: ChangeResult
        switch outcome {
        case .applied, .duplicate: result = ChangeResult(id: change.id, status: .applied, won: true)
        case .superseded: result = ChangeResult(id: change.id, status: .superseded, won: false)
        case .conflict: result = ChangeResult(id: change.id, status: .conflict, won: won, conflict: conflictID)
        }
        try log(index, result: result)
        return result
    }

    // MARK: Reading state

    struct RowState {
        var tombstone: StoredCell?
        var newestOther: StoredCell?
        var isDeleted: Bool {
            Merge.isRowDeleted(tombstone: tombstone?.value, newestOtherVersion: newestOther?.version)
        }

        /// The tombstone and the newest other cell of a row's cells.
        init(_ cells: RowCells) {
            for (column, cell) in cells {
                if column == Merge.deletedColumn {
                    tombstone = cell
                } else if newestOther.map({ cell.version > $0.version }) ?? true {
                    newestOther = cell
                }
            }
        }
    }

    /// A row's cells as this transaction sees them, shared so a write updates them in place.
    final class CachedRow {
        var cells: RowCells
        init(_ cells: consuming RowCells) { self.cells = cells }
    }

    mutating func cachedRow(table: String, row: String) throws -> CachedRow {
        if let last = lastRow, last.row == row, last.table == table { return last.cells }
        let address = RowAddress(table: table, row: row)
        // Rows the window's prefetch did not read (rescoping, unique-key candidates) are read alone.
        // A row missing from the cache has nothing unwritten, so the store has its cells.
        if rowCache[address] == nil { try readUncachedRows([table: [row]]) }
        guard let cached = rowCache[address] else { throw StoreError.corrupt("row \(table) \(row) was read but not cached") }
        lastRow = (table, row, cached)
        return cached
    }

    mutating func cells(table: String, row: String) throws -> RowCells {
        try cachedRow(table: table, row: row).cells
    }

    mutating func rowState(table: String, row: String) throws -> RowState {
        RowState(try cells(table: table, row: row))
    }

    /// The first result of a change id the store has seen before, from the history of its row.
    mutating func earlierResult(of change: Change) throws -> ChangeResult? {
        if try marks.isSurelyNew(change, connection) { return nil }
        let known = try recordedChanges(table: change.table, rows: [change.row], ids: [change.id])[change.id]
        return known.map { $0.change.result(for: change, row: $0.row) }
    }

    /// The changes with these ids in the history of these rows of `table`.
    func recordedChanges(table: String, rows: [String], ids: Set<String>) throws -> [String: (row: String, change: RecordedChange)] {
        let stmt = try connection.cachedStatement("SELECT changes, row_id FROM history WHERE tbl = ? AND row_id IN " + Self.idListPlaceholders(rows.count))
        defer { stmt.reset() }
        try stmt.bind(table, at: 1)
        try Self.bindIDs(rows, to: stmt, from: 2)
        var found: [String: (row: String, change: RecordedChange)] = [:]
        while try stmt.step() {
            guard let row = stmt.text(1), let changes = try stmt.withBytes(0, { try HistoryCoding.decode($0, columns: store.columnNames) }) else { continue }
            for change in changes where ids.contains(change.id) && found[change.id] == nil { found[change.id] = (row, change) }
        }
        return found
    }

    func validateChangeID(_ id: String) -> ChangeRejection? {
        let ok = !id.isEmpty && id.utf8.count <= 64 && id.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
        return ok ? nil : ChangeRejection(.invalidChangeID, "a change id is 1 to 64 printable ASCII characters")
    }

    // MARK: Writing

    /// Sets a cell (its row's record is written with the next flush; this transaction reads it from the
    /// row cache at once).
    mutating func writeCell(_ key: CellKey, _ value: VersionedValue, device writer: String? = nil) throws {
        let device = writer ?? self.device
        let row = try cachedRow(table: key.table, row: key.row)
        let old = row.cells[key.column]?.value.value
        row.cells[key.column] = StoredCell(value: value, device: device, sequence: nextSequence())
        let address = RowAddress(table: key.table, row: key.row)
        try pending.write(address, row, connection)
        touch(address, column: key.column)
        if store.links.isLinked(table: key.table, column: key.column), (old ?? .null) != value.value {
            pending.link(key, from: old ?? .null, to: value.value)
        }
        noteScopeChange(key, old: old, new: value.value)
    }

    /// Writes the gathered records, links and history entries; call before reading them in SQL.
    mutating func flushWrites() throws {
        try pending.flush(batch: batch, connection)
    }

    mutating func recordConflict(table: DataModel.Table, key: CellKey, winner: VersionedValue, winnerDevice: String?,
                                 loser: VersionedValue, loserDevice: String?, base: CellVersion?, rule: String,
                                 review forceReview: Bool = false) throws -> Int64 {
        let review = forceReview || table.column(named: key.column)?.policy == .review
        touch(RowAddress(table: key.table, row: key.row), column: key.column)
        let stmt = try connection.literalStatement("""
            INSERT INTO conflicts (seq, tbl, row_id, col, winner_value, winner_hlc, winner_node, winner_device,
                loser_value, loser_hlc, loser_node, loser_device, base_hlc, base_node, rule, review, recorded_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id
            """)
        try stmt.bind([
            .integer(nextSequence()), .text(key.table), .text(key.row), .text(key.column),
            winner.value, winner.version.hlcValue, winner.version.nodeValue, winnerDevice.map(CellValue.text) ?? .null,
            loser.value, loser.version.hlcValue, loser.version.nodeValue, loserDevice.map(CellValue.text) ?? .null,
            base?.hlcValue ?? .null, base?.nodeValue ?? .null, .text(rule), .integer(review ? 1 : 0), .text(receivedAt),
        ])
        guard try stmt.step() else { throw StoreError.corrupt("inserting a conflict record returned no id") }
        let id = stmt.int64(0)
        stmt.reset()
        return id
    }

    /// A deletion won against edits its writer never saw: each such edit becomes a conflict record.
    mutating func recordDeleteWins(table: DataModel.Table, row: String, deletion: VersionedValue, deletionBase: CellVersion?) throws -> Int64? {
        var first: Int64?
        for (column, cell) in try cells(table: table.name, row: row).sorted(by: { $0.key < $1.key }) where column != Merge.deletedColumn {
            if let deletionBase, cell.version <= deletionBase { continue }  // the deleter saw this one
            let id = try recordConflict(
                table: table, key: CellKey(table: table.name, row: row, column: column),
                winner: VersionedValue(value: .null, version: deletion.version), winnerDevice: device,
                loser: cell.value, loserDevice: cell.device, base: deletionBase, rule: "delete-wins")
            first = first ?? id
        }
        return first
    }

    /// Marks a conflict resolved and gives it a new sequence number, so every device learns of it.
    mutating func resolve(_ resolution: Resolution) throws -> Bool {
        let text = String(resolution.resolution.prefix(500))
        try connection.run("""
            UPDATE conflicts SET resolved_at = ?, resolved_by = ?, resolution = ?, seq = ? WHERE id = ?
            """, [.text(receivedAt), .text(device), .text(text), .integer(nextSequence()), .integer(resolution.conflict)])
        guard connection.changes > 0 else { return false }
        footprint.everyone = true  // rare, and the conflict's row is not at hand: every device hears of it
        return true
    }

    mutating func touch(_ row: RowAddress, column: String) {
        // A batch's changes come row by row: most calls are for the row touched just before.
        if lastTouched?.row != row.row || lastTouched?.table != row.table {
            touchedRows.insert(row)
            lastTouched = row
        }
        if footprint.columns[row.table]?.contains(column) != true { footprint.columns[row.table, default: []].insert(column) }
    }

    /// What this batch touched, with the scopes its rows are in now (after rescoping); a row of
    /// reference data everyone sees wakes everyone. Scopes the rescoping did not already read are
    /// read per table, many rows per statement.
    mutating func finishFootprint() throws -> ChangeFootprint {
        var unread: [String: [String]] = [:]
        for row in touchedRows {
            if case .global = store.scopePlan.rules[row.table] ?? .global { return .everyone }
            if let cached = scopeCache[row] {
                footprint.scopes.formUnion(cached)
            } else if !rowsNewInBatch.contains(row) {
                unread[row.table, default: []].append(row.row)
            }
        }
        for (table, rows) in unread.sorted(by: { $0.key < $1.key }) {
            for start in stride(from: 0, to: rows.count, by: Self.windowSize) {
                let window = rows[start..<min(start + Self.windowSize, rows.count)]
                let stmt = try connection.cachedStatement("SELECT DISTINCT scope FROM row_scopes WHERE tbl = ? AND row_id IN "
                    + Self.idListPlaceholders(window.count))
                defer { stmt.reset() }
                try stmt.bind(table, at: 1)
                try Self.bindIDs(window, to: stmt, from: 2)
                while try stmt.step() { if let scope = stmt.text(0) { footprint.scopes.insert(scope) } }
            }
        }
        return footprint
    }

    /// Adds `batch[index]` to the history (with the next flush).
    mutating func log(_ index: Int, result: ChangeResult) throws {
        marks.note(id: batch[index].id, version: batch[index].version)
        try pending.log(index, result: result, batch: batch, connection)
    }
}

/// "3 minutes", "2 days": a rough human duration.
func describeDuration(milliseconds: Int64) -> String {
    let seconds = milliseconds / 1000
    if seconds < 120 { return "\(seconds) seconds" }
    if seconds < 7200 { return "\(seconds / 60) minutes" }
    if seconds < 2 * 86400 { return "\(seconds / 3600) hours" }
    return "\((seconds + 43_200) / 86400) days"
}
