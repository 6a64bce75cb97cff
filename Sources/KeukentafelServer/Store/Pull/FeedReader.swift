import KeukentafelProtocol
import KeukentafelSQLite

/// The change feed for one device: pages of the cells it may see, with conflicts, evictions and purges
/// (decisions 0010, 0011, 0017).
struct FeedReader: Sendable {
    let store: ServerStore

    init(store: ServerStore) { self.store = store }

    /// The default and the greatest number of cells in one pulled page.
    static let defaultPageSize = 5_000
    static let maxPageSize = 50_000

    /// One page of the change feed for a device: the current state of every cell it may see whose
    /// sequence number is greater than `since`, row by row in the order of each row's newest cell (and
    /// of the rows' other cells newer than `floor`, where the device's pass through the feed started;
    /// nil: all of them), the conflicts recorded in the same range, and the rows that left its scopes
    /// or were erased.
    ///
    /// Read in one snapshot. SQLite has one writer, and sequence numbers are handed out inside its
    /// write transaction, so every number up to the snapshot's greatest is committed: a cursor never
    /// passes a change that commits later. `limit` bounds the cells read that may be for the device:
    /// every cell for a device that sees every scope, the cells of its scopes' and global rows for a
    /// device of some teams (the database skips the rest, `scopeNarrowing`). The cursor passes all of
    /// them, sent or not.
    func pull(since cursor: Int64, floor: Int64? = nil, limit: Int, access: Access = .system, device: String? = nil,
              epoch deviceEpoch: String? = nil, proof: String? = nil, skipOwn: Bool = false) throws -> PullResponse {
        let (page, delivery) = try pullPage(since: cursor, floor: floor, limit: limit, access: access, device: device, epoch: deviceEpoch,
                                            proof: proof, skipOwn: skipOwn)
        if let delivery { try record([delivery]) }
        return page
    }

    /// `pull` without noting the delivery: the caller records it (`record`), with others in one transaction,
    /// before the page is sent.
    func pullPage(since cursor: Int64, floor: Int64? = nil, limit: Int, access: Access = .system, device: String? = nil,
                  epoch deviceEpoch: String? = nil, proof: String? = nil, skipOwn: Bool = false) throws -> (page: PullResponse, delivery: Delivery?) {
        let limit = max(1, min(limit, Self.maxPageSize))
        let now = store.clock()
        if let shared = try sharedAnswer(since: cursor, floor: floor, limit: limit, access: access, device: device, epoch: deviceEpoch,
                                         skipOwn: skipOwn, now: now) {
            return shared
        }
        var wentBack = false
        var informed: (before: Int64, now: Int64)?
        var confirmed: (before: Int64, now: Int64)?
        var page = try store.reader.withConnection { connection -> PullResponse in
            try connection.transaction(immediate: false) {
                var head: Int64 = 0, epoch: String?, key = ""
                // Compiled once per connection: a push that wakes thousands of long-polls runs this for each.
                let meta = try connection.literalStatement("SELECT key, value FROM meta WHERE key IN ('seq', 'epoch', 'cursor_key')")
                defer { meta.reset() }
                while try meta.step() {
                    switch meta.text(0) {
                    case "seq": head = meta.value(1).int64 ?? 0
                    case "epoch": epoch = meta.text(1)
                    default: key = meta.text(1) ?? ""
                    }
                }
                let otherEpoch = deviceEpoch != nil && deviceEpoch != epoch
                if cursor > head, !otherEpoch {
                    // Beyond the head: the store went back (a file put back by hand) if it once handed this
                    // cursor out, which its proof shows; otherwise the device asks for what never was.
                    guard let proof, !key.isEmpty, CursorProof.isValid(proof, cursor: cursor, epoch: epoch, key: key) else {
                        throw StoreRefusal(.cursorAhead, "cursor \(cursor) is beyond anything this server handed out (its newest is \(head)); "
                            + "pull from 0 to start the feed over")
                    }
                    wentBack = true
                }
                let state = try device.map { try DeviceState.read($0, connection) } ?? nil
                let scopesChanged = state?.mustResync ?? false
                if cursor > 0, wentBack || otherEpoch || scopesChanged {
                    // The device's scopes changed, or it has seen a future this store does not have (restored).
                    if let state { informed = (state.informedSequence, head) }
                    return PullResponse(cursor: 0, more: true, rows: [], conflicts: [], resync: true, epoch: epoch, floor: 0, head: head,
                                        serverTime: now, schemaVersion: store.dataModel.version)
                }
                // Devices with the same access and cursor are sent the same page (a push woke them together).
                let shared = SharedPages.Key(access: access, since: cursor, floor: min(floor ?? 0, cursor), limit: limit, head: head, epoch: epoch)
                let read = { () throws -> PullResponse in
                    var page = try readPage(since: cursor, floor: shared.floor, limit: limit, head: head, epoch: epoch, access: access, connection)
                    if !key.isEmpty { page.cursorProof = CursorProof.proof(cursor: page.cursor, epoch: epoch, key: key) }
                    return page
                }
                var page: PullResponse
                switch store.sharedPages.lookUp(shared, claim: true) {
                case .found(let kept):
                    page = kept
                    page.serverTime = now
                case .yours:
                    // Others woken with this device wait for this read; they get the page, or read it themselves if it fails.
                    var done: PullResponse?
                    defer { store.sharedPages.finish(shared, with: done) }
                    page = try read()
                    done = page
                case .absent:
                    page = try read()
                }
                // No echo: the cells whose current version the device's own replica wrote, it has.
                if skipOwn, let own = state?.node { page = page.leavingOut(cellsOf: own) }
                if let state {
                    informed = (state.informedSequence, page.cursor)
                    confirmed = (state.confirmedSequence, cursor)
                }
                return page
            }
        }
        if wentBack {
            // The device has seen a future this store lacks: the file was put back by hand. A new epoch
            // makes every device that synced past this point notice too.
            page.epoch = try rotateEpoch()
            return (page, nil)
        }
        guard let device else { return (page, nil) }
        let delivery = Delivery(device: device, page: page, since: cursor, informed: informed, confirmed: confirmed)
        return (page, delivery.isEmpty ? nil : delivery)
    }

    /// The answer from a page another device with the same access and cursor was sent at the same head,
    /// if there is one and nothing about this device asks for more (a push woke them together, issue 23).
    /// One statement reads the head and the device's state, a snapshot of its own, and no transaction is
    /// begun: on PostgreSQL that is one round trip instead of four for each of a region's woken devices.
    /// Otherwise nil, and `pullPage` reads everything in one transaction as usual.
    private func sharedAnswer(since cursor: Int64, floor: Int64?, limit: Int, access: Access, device: String?, epoch deviceEpoch: String?,
                              skipOwn: Bool, now: Int64) throws -> (page: PullResponse, delivery: Delivery?)? {
        // Most pulls (a bootstrap's pages, a lone device's) find none: they do not read the head twice.
        let floor = min(floor ?? 0, cursor)
        guard store.sharedPages.mayHold(SharedPages.Key(access: access, since: cursor, floor: floor, limit: limit, head: 0, epoch: nil)) else {
            return nil
        }
        let (head, epoch, state) = try store.reader.withConnection { connection -> (Int64, String?, DeviceState?) in
            let read = try connection.literalStatement("""
                SELECT m.key, m.value, d.node, d.node_high_water, d.informed_seq, d.name, d.resync, d.confirmed_seq
                FROM meta m LEFT JOIN devices d ON d.id = ? WHERE m.key IN ('seq', 'epoch')
                """)
            defer { read.reset() }
            try read.bind(device ?? "", at: 1)
            var head: Int64 = 0, epoch: String?, state: DeviceState?
            while try read.step() {
                if read.text(0) == "seq" { head = read.value(1).int64 ?? 0 } else { epoch = read.text(1) }
                if let device { state = DeviceState(device, read, from: 2) }
            }
            return (head, epoch, state)
        }
        // Beyond the head, another epoch, scopes changed: the full path says what to do.
        guard cursor <= head, deviceEpoch == nil || deviceEpoch == epoch, !(state?.mustResync ?? false) else { return nil }
        let key = SharedPages.Key(access: access, since: cursor, floor: floor, limit: limit, head: head, epoch: epoch)
        // A device woken with others whose page is still being read waits for it here, holding no connection.
        guard case .found(var page) = store.sharedPages.lookUp(key, claim: false) else { return nil }
        page.serverTime = now
        if skipOwn, let own = state?.node { page = page.leavingOut(cellsOf: own) }
        guard let device else { return (page, nil) }
        let delivery = Delivery(device: device, page: page, since: cursor, informed: state.map { ($0.informedSequence, page.cursor) },
                                confirmed: state.map { ($0.confirmedSequence, cursor) })
        return (page, delivery.isEmpty ? nil : delivery)
    }

    /// The feed from `since` for `access`, in the read transaction of `pull`.
    private func readPage(since cursor: Int64, floor: Int64, limit: Int, head: Int64, epoch: String?, access: Access,
                          _ connection: any StoreConnection) throws -> PullResponse {
        let now = store.clock()
        var visibility = Visibility(store: store, access: access, connection: connection)
        // One record per row (decision 0020), in the order of its newest cell. A record newer than the
        // cursor may hold cells older than it that this device has not had: a page of this pass ended
        // between them and the record's newest. So the page sends each record's cells newer than the
        // pass's floor (where the pass started); the cursor counts those newer than itself, at least one
        // per record, so `limit` records always fill a page of `limit` cells. Pages end between records.
        let narrowing = scopeNarrowing(for: access)
        let stmt: any StoreStatement = try narrowing.map { try connection.cachedStatement($0.sql) }
            ?? connection.literalStatement("SELECT tbl, row_id, cells, seq FROM records WHERE seq > ? ORDER BY seq LIMIT ?")
        var rows: [FeedRow] = []
        var count = 0
        var full = false, exhausted = false
        var lastSequence = cursor
        var pending: [FeedRow] = []
        var flags: [(table: String, row: String, flag: CellValue?)] = []
        var flagColumns: [String: String?] = [:]
        while !full && !exhausted {
            // SQLite steps through the records lazily, so one statement reads what the page needs. The
            // PostgreSQL connection receives a statement's whole result, so there the records are asked
            // for in pieces of about a quarter as many as the cells still wanted (most rows hold several).
            let wanted = connection.dialect == .sqlite ? limit : max(16, (limit - count) / 4)
            try stmt.bind(lastSequence, at: 1)
            var position: Int32 = 2
            for argument in narrowing?.arguments ?? [] {
                try stmt.bind(argument, at: position)
                position += 1
            }
            try stmt.bind(Int64(wanted), at: position)
            var read = 0
            while try stmt.step() {
                read += 1
                lastSequence = stmt.int64(3)
                guard let table = stmt.text(0), let row = stmt.text(1) else { continue }
                var cells: [FeedCell] = []
                let flagColumn = flagColumns[table] ?? {
                    let column = store.dataModel.table(named: table)?.confidentialWhen
                    flagColumns[table] = column
                    return column
                }()
                var flag: CellValue?
                try stmt.withBytes(2) { bytes in
                    try RowCoding.forEachCell(in: bytes, columns: store.columnNames, devices: store.deviceNumbers) { column, cell in
                        if column == flagColumn { flag = cell.value.value }
                        guard cell.sequence > floor else { return }
                        if cell.sequence > cursor { count += 1 }
                        cells.append(FeedCell(column: column, value: cell.value.value, version: cell.version))
                    }
                }
                if !cells.isEmpty {
                    pending.append(FeedRow(table: table, row: row, cells: cells))
                    flags.append((table, row, flag))
                }
                if count >= limit {
                    full = true
                    break
                }
            }
            stmt.reset()
            exhausted = !full && read < wanted
        }
        try visibility.decide(flags)
        // Decided once per row, not per cell; only a partner's rows are filtered cell by cell (filtering
        // every row's cells was a sixth of reading a bootstrap's pages).
        rows.reserveCapacity(pending.count)
        for var row in pending where try visibility.canSeeRow(table: row.table, row: row.row) {
            if !visibility.seesEveryColumn {
                row.cells.removeAll { !visibility.canSeeColumn($0.column, of: row.table) }
                if row.cells.isEmpty { continue }
            }
            rows.append(row)
        }
        let more = !exhausted
        let upTo = more ? lastSequence : max(cursor, head)
        let conflicts = try Conflicts.read(connection, where: "seq > ? AND seq <= ?", [.integer(cursor), .integer(upTo)])
            .filter { try visibility.canSee(table: $0.table, row: $0.row, column: $0.column) }
        var evictions: [RowReference] = [], purges: [RowReference] = []
        var seen = Set<RowReference>()
        for entry in try connection.query("SELECT tbl, row_id, scope, kind FROM evictions WHERE seq > ? AND seq <= ? ORDER BY seq",
                                          [.integer(cursor), .integer(upTo)]) {
            guard let table = entry[0].string, let row = entry[1].string, let scope = entry[2].string else { continue }
            let reference = RowReference(table: table, row: row)
            guard access.seesEveryScope || access.scopes.contains(scope) || scope == Access.everyScope,
                  !seen.contains(reference) else { continue }
            if entry[3].string == "purge" {
                seen.insert(reference)
                purges.append(reference)
            } else if try !visibility.canSeeRow(table: table, row: row) {
                seen.insert(reference)
                evictions.append(reference)
            }
        }
        return PullResponse(cursor: upTo, more: more, rows: rows, conflicts: conflicts, evictions: evictions,
                            purges: purges, epoch: epoch, floor: more ? floor : nil, head: head, serverTime: now,
                            schemaVersion: store.dataModel.version)
    }

    /// For a device that does not see every scope (and is not a partner): the feed query that leaves
    /// out, in the database, the cells of rows in none of its scopes. A superset of what `Visibility`
    /// lets through (`AccessRules.canSee`: a row of a scoped table needs one of the device's scopes,
    /// confidential or not; rows of global tables need none), so it never hides a cell the device may
    /// see. A team's bootstrap then reads its own rows rather than the whole feed in Swift.
    func scopeNarrowing(for access: Access) -> (sql: String, arguments: [String])? {
        guard !access.seesEveryScope, access.role != .partner else { return nil }
        let globals = store.scopePlan.globalTables
        let scopes = access.scopes.sorted()
        var condition: [String] = []
        if !globals.isEmpty { condition.append("c.tbl IN " + PushContext.placeholders(globals.count)) }
        if !scopes.isEmpty {
            condition.append("EXISTS (SELECT 1 FROM row_scopes r WHERE r.tbl = c.tbl AND r.row_id = c.row_id AND r.scope IN "
                + PushContext.placeholders(scopes.count) + ")")
        }
        guard !condition.isEmpty else { return nil }
        return ("SELECT c.tbl, c.row_id, c.cells, c.seq FROM records c WHERE c.seq > ? AND ("
                    + condition.joined(separator: " OR ") + ") ORDER BY c.seq LIMIT ?", globals + scopes)
    }

    /// Whether `access` may see a row now.
    func canSee(table: String, row: String, access: Access) throws -> Bool {
        try store.reader.withConnection { connection in
            var visibility = Visibility(store: store, access: access, connection: connection)
            return try visibility.canSeeRow(table: table, row: row)
        }
    }

    /// Gives the feed a new epoch (once per going-back) and returns the current one.
    func rotateEpoch() throws -> String? {
        try store.writer.withLock { connection in
            try connection.transaction {
                let current = try connection.scalar("SELECT value FROM meta WHERE key = 'epoch'")?.string
                guard let head = try connection.scalar("SELECT value FROM meta WHERE key = 'seq'")?.int64 else { return current }
                // Once per going-back: devices that were ahead all notice the one new epoch.
                if try connection.scalar("SELECT value FROM meta WHERE key = 'epoch_rotated_at'")?.int64 == head { return current }
                try connection.setMeta("epoch_rotated_at", .integer(head))
                let epoch = NodeID.random().description
                try connection.run("UPDATE meta SET value = ? WHERE key = 'epoch'", [.text(epoch)])
                try store.audit.append(connection, actor: "ktd", action: "epoch.rotate", subject: nil,
                          detail: "a device was ahead of the store (sequence \(head)): the store went back")
                return epoch
            }
        }
    }
}
