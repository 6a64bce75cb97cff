import KeukentafelProtocol
import KeukentafelSQLite

/// What applying one pulled page changed locally.
public struct ApplyCounts: Sendable, Equatable, Codable {
    public init() {}
    public var cellsReceived = 0
    public var cellsApplied = 0
    public var rowsDeleted = 0
    public var conflicts = 0
    /// Rows dropped because they left this device's scopes, were erased, or were not in a resync.
    public var rowsEvicted = 0
    public var rowsPurged = 0
    /// After the server's store went back to a backup: own writes queued to be sent again.
    public var changesRequeued = 0
}

extension Replica {
    /// Applies one page of the change feed and stores the new cursor, all in one transaction: after a
    /// crash the replica holds either the old state and cursor or the new ones, never a mix.
    ///
    /// A pulled cell replaces the local one only if its version is greater, so a local write made
    /// while the pull was in flight is never overwritten by an older value.
    func apply(_ page: PullResponse) throws -> ApplyCounts {
        let counts = try applyInTransaction(page)
        if !page.purges.isEmpty {
            // Erased data must not linger in the write-ahead log either.
            try locked { try connection.execute("PRAGMA wal_checkpoint(TRUNCATE)") }
        }
        return counts
    }

    private func applyInTransaction(_ page: PullResponse) throws -> ApplyCounts {
        try locked {
            try withoutCapture {
                try connection.transaction {
                    var counts = ApplyCounts()
                    if page.resync {
                        // A new epoch means the store went back: recover this device's own writes.
                        let known = try meta("server_epoch")
                        let wentBack = known != nil && page.epoch != nil && page.epoch != known
                        try beginResync(wentBack ? .recovery : .scopes)
                        if let epoch = page.epoch { try setMeta("server_epoch", epoch) }
                        return counts
                    }
                    let recovering = try resyncMode == .recovery
                    var newest: UInt64 = 0
                    for (index, row) in page.rows.enumerated() {
                        counts.cellsReceived += row.cells.count
                        try applyRow(row, counts: &counts, newest: &newest, recovering: recovering)
                        try afterApplyingRow?(index)
                    }
                    for conflict in page.conflicts {
                        try store(conflict)
                        counts.conflicts += 1
                    }
                    if !page.evictions.isEmpty { counts.rowsEvicted += try remove(page.evictions, purge: false) }
                    if !page.purges.isEmpty { counts.rowsPurged += try remove(page.purges, purge: true) }
                    if let mode = try resyncMode {
                        try noteSeen(page.rows)
                        if !page.more {
                            let finished = try finishResync(mode)
                            counts.rowsEvicted += finished.dropped
                            counts.changesRequeued += finished.requeued
                        }
                    }
                    if let epoch = page.epoch, try meta("server_epoch") != epoch { try setMeta("server_epoch", epoch) }
                    if newest > 0 { try observe(hlc: newest) }
                    if page.schemaVersion != dataModel.version { try setMeta("server_schema_version", String(page.schemaVersion)) }
                    try setMeta("cursor", String(page.cursor))
                    try setMeta("cursor_proof", page.cursorProof)
                    try setMeta("cursor_floor", page.more ? page.floor.map { String($0) } : nil)
                    try setMeta("last_pull_at", String(clock()))
                    // The end of the feed, outside a resync: the replica holds what the device may see.
                    if !page.more, try resyncMode == nil { try setMeta("download_complete_at", String(clock())) }
                    return counts
                }
            }
        }
    }

    /// Applies a page outside a sync, for benchmarks that time the stages of a bootstrap.
    public func applyForBenchmark(_ page: PullResponse) throws -> ApplyCounts { try apply(page) }

    /// Applies the cells of one row. Versions decide per cell; the merged versions decide whether the
    /// row is live. A dead row's values are kept beside its versions (`_kt_kept`), so if a newer
    /// edit brings it back, the row returns whole, whatever order the cells arrive in.
    func applyRow(_ row: FeedRow, counts: inout ApplyCounts, newest: inout UInt64, recovering: Bool = false) throws {
        guard let plan = tablePlan(row.table) else {
            try stash(row.cells, table: row.table, row: row.row)  // a table this model version does not know yet
            return
        }
        let table = plan.table
        let quotedTable = plan.quotedName
        // Everything this replica knows about the row's versions, in one read.
        var versions = try storedVersions(table: row.table, row: row.row)
        let knownBefore = !versions.isEmpty
        var tombstone: VersionedValue?
        if let version = versions[Merge.deletedColumn] {
            tombstone = VersionedValue(value: try keptValue(table: row.table, row: row.row, column: Merge.deletedColumn), version: version)
        }

        // Which incoming cells win (pure: nothing written yet).
        var winners: [FeedCell] = []
        for cell in row.cells {
            newest = max(newest, cell.version.hlc)
            if let mine = versions[cell.column], mine >= cell.version {
                if recovering, mine > cell.version, mine.node == node {
                    try noteNewerOwnCell(table: row.table, row: row.row, column: cell.column, serverVersion: cell.version)
                }
                continue
            }
            let isTombstone = cell.column == Merge.deletedColumn
            guard isTombstone || plan.positions[cell.column] != nil else {
                try stash([cell], table: row.table, row: row.row)
                continue
            }
            versions.set(cell.column, cell.version)
            if isTombstone { tombstone = VersionedValue(value: cell.value, version: cell.version) }
            winners.append(cell)
        }
        guard !winners.isEmpty else { return }
        counts.cellsApplied += winners.count
        let dead = Merge.isRowDeleted(tombstone: tombstone, newestOtherVersion: versions.newestOtherThanTombstone)
        try storeVersions(versions, table: row.table, row: row.row)
        // The tombstone's value lives nowhere else; a dead row keeps the values that arrived for it.
        for cell in winners where dead || cell.column == Merge.deletedColumn {
            try keep(cell.value, table: row.table, row: row.row, column: cell.column)
        }
        let values = winners.filter { $0.column != Merge.deletedColumn }.map { ($0.column, $0.value) }
        // A row this replica knew and that lives on is most often still there: one UPDATE, and nothing
        // else unless it changed no row (the row had died here). A row without versions cannot exist
        // (every app row has versions): it is inserted without a lookup (bootstrap).
        if knownBefore, !dead, try upsert(plan, row: row.row, values: values, onlyIfPresent: true) { return }
        if dead {
            if try knownBefore && connection.scalar("SELECT 1 FROM \(quotedTable) WHERE id = ?", [.text(row.row)]) != nil {
                try keepValuesOfDyingRow(table: table, row: row.row, versions: versions, except: Set(values.map(\.0)))
                try connection.run("DELETE FROM \(quotedTable) WHERE id = ?", [.text(row.row)])
                counts.rowsDeleted += 1
            }
        } else if knownBefore {
            // A dead row comes back: its kept values, overlaid with what just arrived.
            var restored: [String: CellValue] = [:]
            for kept in try connection.query(
                "SELECT col, val FROM _kt_kept WHERE tbl = ? AND row_id = ? AND col <> '_deleted'", [.text(row.table), .text(row.row)]) {
                if case .text(let column) = kept[0], table.column(named: column) != nil { restored[column] = kept[1] }
            }
            for (column, value) in values { restored[column] = value }
            try upsert(plan, row: row.row, values: restored.sorted { $0.key < $1.key })
            try connection.run("DELETE FROM _kt_kept WHERE tbl = ? AND row_id = ? AND col <> '_deleted'", [.text(row.table), .text(row.row)])
        } else {
            try upsert(plan, row: row.row, values: values)
        }
    }

    /// The kept value of a cell (see `_kt_kept`), NULL if none is kept.
    private func keptValue(table: String, row: String, column: String) throws -> CellValue {
        try connection.scalar("SELECT val FROM _kt_kept WHERE tbl = ? AND row_id = ? AND col = ?", [.text(table), .text(row), .text(column)]) ?? .null
    }

    private func keep(_ value: CellValue, table: String, row: String, column: String) throws {
        try connection.run("""
            INSERT INTO _kt_kept (tbl, row_id, col, val) VALUES (?, ?, ?, ?) ON CONFLICT (tbl, row_id, col) DO UPDATE SET val = excluded.val
            """, [.text(table), .text(row), .text(column), value])
    }

    /// Keeps cells this model version cannot place, newest version per cell.
    private func stash(_ cells: [FeedCell], table: String, row: String) throws {
        for cell in cells {
            try connection.run("""
                INSERT INTO _kt_stash (tbl, row_id, col, value, hlc, node) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (tbl, row_id, col) DO UPDATE SET value = excluded.value, hlc = excluded.hlc, node = excluded.node
                WHERE excluded.hlc > _kt_stash.hlc OR (excluded.hlc = _kt_stash.hlc AND excluded.node > _kt_stash.node)
                """, [.text(table), .text(row), .text(cell.column), cell.value,
                      .integer(Int64(cell.version.hlc)), .integer(Int64(cell.version.node.rawValue))])
        }
    }

    /// Keeps the values of a row about to be deleted, for the cells that have a version.
    private func keepValuesOfDyingRow(table: DataModel.Table, row: String, versions: RowVersions, except: Set<String>) throws {
        let columns = table.columns.map(\.name).filter { !except.contains($0) && versions[$0] != nil }
        guard !columns.isEmpty else { return }
        let current = try connection.query(
            "SELECT \(columns.map(ReplicaSchema.quote).joined(separator: ", ")) FROM \(ReplicaSchema.quote(table.name)) WHERE id = ?",
            [.text(row)])
        guard let values = current.first else { return }
        for (column, value) in zip(columns, values) { try keep(value, table: table.name, row: row, column: column) }
    }

    /// The apply path's view of a table of the current model; nil for a table it does not know.
    func tablePlan(_ name: String) -> TablePlan? {
        if let plan = tablePlans[name] { return plan }
        guard let table = dataModel.table(named: name) else { return nil }
        let plan = TablePlan(table: table, quotedName: ReplicaSchema.quote(name),
                             positions: Dictionary(uniqueKeysWithValues: table.columns.enumerated().map { ($1.name, $0) }))
        tablePlans[name] = plan
        return plan
    }

    /// Inserts or updates the given columns of an app row. Statements are kept per shape (table and
    /// set of columns); a bootstrap uses one shape per table.
    /// Writes `values` into the row: inserts it or updates it, or with `onlyIfPresent` updates it only if it
    /// is there. Whether a row was written.
    @discardableResult
    private func upsert(_ plan: TablePlan, row: String, values: [(String, CellValue)], onlyIfPresent: Bool = false) throws -> Bool {
        var mask: UInt64 = 0
        var ordered: [(Int, CellValue)] = []
        ordered.reserveCapacity(values.count)
        for (column, value) in values {
            guard let index = plan.positions[column], index < 64 else { continue }
            if mask & (1 << index) == 0 { ordered.append((index, value)) }
            mask |= 1 << index
        }
        ordered.sort { $0.0 < $1.0 }
        let model = plan.table
        if onlyIfPresent, ordered.isEmpty {
            return try connection.scalar("SELECT 1 FROM \(plan.quotedName) WHERE id = ?", [.text(row)]) != nil
        }
        let shape = UpsertShape(table: model.name, columns: mask, updateOnly: onlyIfPresent)
        let stmt: SQLiteStatement
        if let cached = upserts[shape] {
            cached.reset()
            stmt = cached
        } else {
            let columns = ordered.map { ReplicaSchema.quote(model.columns[$0.0].name) }
            let names = (["id"] + columns).joined(separator: ", ")
            let placeholders = Array(repeating: "?", count: columns.count + 1).joined(separator: ", ")
            if onlyIfPresent {
                // The id last, as in the INSERT: the values are bound from 2 on either way.
                let sets = columns.enumerated().map { "\($1) = ?\($0 + 2)" }.joined(separator: ", ")
                stmt = try connection.prepare("UPDATE \(plan.quotedName) SET \(sets) WHERE id = ?1")
            } else {
                let updates = columns.isEmpty ? "NOTHING" : "UPDATE SET " + columns.map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
                stmt = try connection.prepare("INSERT INTO \(plan.quotedName) (\(names)) VALUES (\(placeholders)) ON CONFLICT (id) DO \(updates)")
            }
            upserts[shape] = stmt
        }
        try stmt.bind(row, at: 1)
        for (i, entry) in ordered.enumerated() { try stmt.bind(entry.1, at: Int32(i + 2)) }
        try stmt.run()
        return !onlyIfPresent || connection.changes > 0
    }

    private func store(_ conflict: ConflictRecord) throws {
        try connection.run("""
            INSERT INTO _kt_conflicts (id, tbl, row_id, col, winner_value, winner_version, winner_device, loser_value, loser_version,
                loser_device, base_version, rule, review, recorded_at, resolved_at, resolved_by, resolution,
                winner_device_name, loser_device_name, winner_user, loser_user)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (id) DO UPDATE SET resolved_at = excluded.resolved_at, resolved_by = excluded.resolved_by,
                resolution = excluded.resolution
            """, Self.arguments(of: conflict))
    }

    /// The columns of `_kt_conflicts` for one record, in table order.
    private static func arguments(of conflict: ConflictRecord) -> [CellValue] {
        func text(_ value: String?) -> CellValue { value.map(CellValue.text) ?? .null }
        var values: [CellValue] = [.integer(conflict.id), .text(conflict.table), .text(conflict.row), .text(conflict.column)]
        values += [conflict.winnerValue, .text(conflict.winnerVersion.description), text(conflict.winnerDevice)]
        values += [conflict.loserValue, .text(conflict.loserVersion.description), text(conflict.loserDevice)]
        values += [text(conflict.base?.description), .text(conflict.rule), .integer(conflict.review ? 1 : 0), .text(conflict.recordedAt)]
        values += [text(conflict.resolvedAt), text(conflict.resolvedBy), text(conflict.resolution)]
        values += [text(conflict.winnerDeviceName), text(conflict.loserDeviceName), text(conflict.winnerUser), text(conflict.loserUser)]
        return values
    }

    /// Conflicts this replica knows of, newest first.
    public func conflicts() throws -> [ConflictRecord] {
        try locked {
            try connection.query("""
                SELECT id, tbl, row_id, col, winner_value, winner_version, winner_device, loser_value, loser_version, loser_device,
                       base_version, rule, review, recorded_at, resolved_at, resolved_by, resolution,
                       winner_device_name, loser_device_name, winner_user, loser_user
                FROM _kt_conflicts ORDER BY id DESC
                """).compactMap { (r: [CellValue]) -> ConflictRecord? in
                guard case .integer(let id) = r[0], let winner = CellVersion(r[5].description), let loser = CellVersion(r[8].description)
                else { return nil }
                func text(_ value: CellValue) -> String? { value == .null ? nil : value.description }
                return ConflictRecord(
                    id: id, table: r[1].description, row: r[2].description, column: r[3].description,
                    winnerValue: r[4], winnerVersion: winner, winnerDevice: text(r[6]),
                    loserValue: r[7], loserVersion: loser, loserDevice: text(r[9]),
                    base: text(r[10]).flatMap(CellVersion.init), rule: r[11].description, review: r[12] == .integer(1),
                    recordedAt: r[13].description, resolvedAt: text(r[14]), resolvedBy: text(r[15]), resolution: text(r[16]),
                    winnerDeviceName: text(r[17]), loserDeviceName: text(r[18]), winnerUser: text(r[19]), loserUser: text(r[20]))
            }
        }
    }
}
