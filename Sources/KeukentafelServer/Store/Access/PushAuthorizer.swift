import KeukentafelProtocol
import KeukentafelSQLite

/// Decides per pushed change whether its writer may make it (decisions 0010 and 0017):
///
/// - the change is the pushing replica's own: its version and id carry the device's node;
/// - the role may change the table and column at all (`AccessRules.writeRefusal`);
/// - an erased row is never written again, nor referred to;
/// - the row was in one of the writer's scopes **when the change was written** (its HLC time): a
///   consultant who wrote notes offline before the case moved to another team still delivers them;
///   a write made after the move, or after the consultant lost the team, is refused (`out_of_scope`)
///   and stays on the device. The change's time is the writer's word, so a scope the row or the user
///   has since lost counts only while the device could not have known: it was not yet sent the
///   change, and its node had pushed nothing newer than it;
/// - a reference may point only at a row the writer may see, and a row may move (a new parent, a new
///   own scope) only where the writer may write too.
///
/// A row that already exists is judged on the store before the batch (so nobody can take over
/// another team's case by setting its team); a row the batch creates is judged after it (its scope
/// comes from the batch itself, e.g. a new case and its first visit).
struct PushAuthorizer {
    let access: Access
    let store: ServerStore
    let connection: any StoreConnection
    /// The pushing device; nil for the office's own writes (`ktd admin`), which are not judged.
    let device: DeviceState?
    /// The writer's scopes: held now, or with when and at which feed position they were taken away.
    let userScopes: [HeldScope]
    /// `<node>-`, the start of every change id of the device's replica.
    private let changeIDPrefix: String?
    private var rowHistories: [PushContext.RowAddress: [HeldScope]] = [:]
    /// Per row of the batch: whether it existed before it, and whether it was erased.
    private var existing: [PushContext.RowAddress: Bool] = [:]
    private var erased: [PushContext.RowAddress: Bool] = [:]
    private var tablesWithErasures: [String: Bool] = [:]

    /// A scope a user or a row holds, or held until a moment: a write made before then counts as made
    /// while it was held, as long as the writing device could not have known of the change.
    struct HeldScope {
        var scope: String
        /// When the scope was lost (server milliseconds) and the feed's sequence number of that change.
        var until: (milliseconds: Int64, sequence: Int64)?
    }

    init(access: Access, store: ServerStore, connection: any StoreConnection, device: DeviceState?) throws {
        self.access = access
        self.store = store
        self.connection = connection
        self.device = device
        self.changeIDPrefix = device?.node.map { "\($0)-" }
        var scopes = access.scopes.map { HeldScope(scope: $0, until: nil) }
        if !access.seesEveryScope {
            for row in try connection.query("SELECT scope, removed_ms, removed_seq FROM user_scope_removals WHERE user_id = ?",
                                            [.text(access.userID)]) {
                if let scope = row[0].string, let until = row[1].int64 {
                    scopes.append(HeldScope(scope: scope, until: (until, row[2].int64 ?? 0)))
                }
            }
        }
        self.userScopes = scopes
    }

    /// Whether a scope counted for a change written at `written` (server milliseconds).
    func held(_ entry: HeldScope, at written: Int64) -> Bool {
        guard let until = entry.until else { return true }
        // A write in the same millisecond as the scope change counts as made before it.
        guard written <= until.milliseconds else { return false }
        guard let device else { return true }
        // The device was sent the change: any write it makes from then on knows of it. Its node pushed
        // something newer than the change: what it wrote before was pushed before that (in write order).
        return device.informedSequence < until.sequence
            && Int64(HybridLogicalClock.milliseconds(of: device.highWater)) <= until.milliseconds
    }

    func scopes(_ entries: [HeldScope], at written: Int64) -> Set<String> {
        Set(entries.lazy.filter { held($0, at: written) }.map(\.scope))
    }

    /// Learns which rows of a batch exist, with one query per table and window of rows instead of
    /// one per row (a round trip each on PostgreSQL). It reads their records while at it, which the
    /// merge needs next (`PushContext.RowsReadBefore`): one read of each row instead of two.
    mutating func readExistence(of changes: [Change]) throws -> PushContext.RowsReadBefore {
        var rows: [String: Set<String>] = [:]
        var previous: (table: String, row: String)?
        for change in changes {
            // A batch's changes come row by row.
            if let previous, previous.row == change.row, previous.table == change.table { continue }
            previous = (change.table, change.row)
            if existing[PushContext.RowAddress(table: change.table, row: change.row)] == nil { rows[change.table, default: []].insert(change.row) }
        }
        var read = PushContext.RowsReadBefore()
        for (table, ids) in rows.sorted(by: { $0.key < $1.key }) {
            let ids = ids.sorted()
            var found = try Records(connection, store: store).cells(table: table, rows: ids)
            for id in ids {
                let address = PushContext.RowAddress(table: table, row: id)
                if let cells = found.removeValue(forKey: id) {
                    existing[address] = true
                    read.records[address] = cells
                } else {
                    existing[address] = false
                    read.absent.insert(address)
                }
            }
        }
        return read
    }

    /// Whether the row exists in the store (has any cell).
    mutating func exists(_ table: String, _ row: String) throws -> Bool {
        let address = PushContext.RowAddress(table: table, row: row)
        if let known = existing[address] { return known }
        let result = !(try Records(connection, store: store).existing(table: table, rows: [row]).isEmpty)
        existing[address] = result
        return result
    }

    /// A change that is not the pushing replica's own: versions and change ids carry its node.
    func nodeRefusal(of change: Change) -> ChangeRejection? {
        guard let device, let node = device.node, let prefix = changeIDPrefix else { return nil }
        if change.version.node != node || !change.id.hasPrefix(prefix) {
            return ChangeRejection(.nodeMismatch, "change '\(change.id.prefix(64))' (version \(change.version)) is not a change of this "
                + "device's replica \(node): a replica pushes only its own writes")
        }
        return nil
    }

    /// Why the change may not be made, or `nil` if it may; on the store as it is now.
    mutating func refusal(of change: Change) throws -> ChangeRejection? {
        if try isErased(change.table, change.row) {
            return ChangeRejection(.rowErased, "\(change.table) \(change.row) was erased and cannot be written again")
        }
        guard let table = store.dataModel.table(named: change.table) else { return nil }  // validation answers
        if let refusal = AccessRules.writeRefusal(table: table, column: change.column, access: access, model: store.dataModel) {
            return refusal
        }
        // What mayWrite answers for these, without the lookups (the office's bulk pushes).
        if store.scopePlan.isGlobal(table.name) || access.seesEveryScope { return nil }
        let written = Int64(change.version.milliseconds)
        let row = try history(of: PushContext.RowAddress(table: change.table, row: change.row))
        if AccessRules.mayWrite(table: table, rowScopesWhenWritten: scopes(row, at: written),
                                userScopesWhenWritten: scopes(userScopes, at: written), access: access) {
            return nil
        }
        return ChangeRejection(.outOfScope, "\(change.table) \(change.row) is not in the scopes of \(access.userName)"
            + " (\(access.scopes.sorted().joined(separator: ", ")))"
            + " and was not when the change was written; it stays on the device")
    }

    /// Why the value of a reference or scope column may not be written: it points at an erased row, at
    /// a row the writer may not see (the link would make that row visible wherever this one is), or it
    /// moves an existing row under a parent or into a scope where the writer may not write. Judged on
    /// the store before the batch. A new row's parent and own scope are judged with the whole row after
    /// the batch (`refusal(of:)`); a refused link or erased reference refuses a new row whole (`push`).
    mutating func referenceRefusal(of change: Change, rowExists: Bool) throws -> ChangeRejection? {
        guard case .text(let value) = change.value, let plan = store.pushPlans[change.table] else { return nil }
        let target = plan.referenceTargets.isEmpty ? nil : plan.referenceTargets[change.column]
        guard target != nil || plan.scopeColumn == change.column else { return nil }  // most cells: neither
        let rule = store.scopePlan.rules[change.table]
        let written = Int64(change.version.milliseconds)
        if let targetName = target {
            if try isErased(targetName, value) {
                // A new row about an erased person goes whole, from the device too; an existing row keeps
                // everything but this link.
                if rowExists {
                    return ChangeRejection(.referenceErased, "\(change.table).\(change.column) refers to \(targetName) \(value), "
                        + "which was erased; the change is refused and the row keeps its other values")
                }
                return ChangeRejection(.rowErased, "\(change.table) \(change.row) refers to \(targetName) \(value), which was erased; "
                    + "the row is not stored and is removed from the device")
            }
            guard !access.seesEveryScope || access.role == .partner, let target = store.pushPlans[targetName]?.table,
                  try exists(targetName, value) else { return nil }
            let isParent: Bool
            if case .parent(let parentColumn, _)? = rule, parentColumn == change.column { isParent = true } else { isParent = false }
            if isParent, !rowExists { return nil }
            let targetScopes = scopes(try history(of: PushContext.RowAddress(table: targetName, row: value)), at: written)
            let userScopes = scopes(self.userScopes, at: written)
            if isParent {
                if !AccessRules.mayWrite(table: target, rowScopesWhenWritten: targetScopes, userScopesWhenWritten: userScopes, access: access) {
                    return ChangeRejection(.outOfScope, "\(change.table) \(change.row) cannot be moved under \(targetName) \(value): "
                        + "\(access.userName) may not write there; it stays on the device")
                }
            } else if !AccessRules.mayReference(table: target, rowScopesWhenWritten: targetScopes, userScopesWhenWritten: userScopes,
                                                access: access, model: store.dataModel) {
                return ChangeRejection(.outOfScope, "\(change.table) \(change.row) refers to \(targetName) \(value), which "
                    + "\(access.userName) may not see; linking it would give access to it (the back office links such rows). "
                    + "It stays on the device")
            }
        }
        if rowExists, case .own(let ownColumn)? = rule, ownColumn == change.column, !access.seesEveryScope {
            let scope = "\(ownColumn):\(value)"
            if !scopes(userScopes, at: written).contains(scope) {
                return ChangeRejection(.outOfScope, "\(change.table) \(change.row) cannot be given to \(scope): \(access.userName) "
                    + "does not hold that scope (someone who holds both hands it over); it stays on the device")
            }
        }
        return nil
    }

    /// Why a decision on conflict `id` may not be recorded: the device must see the conflict's row and
    /// column and may write that column. A conflict it cannot see answers as one that does not exist.
    mutating func resolutionRefusal(conflict id: Int64) throws -> ChangeRejection? {
        let notFound = ChangeRejection(.notFound, "no conflict \(id) among those this device may see; the decision was not recorded")
        guard let record = try connection.query("SELECT tbl, row_id, col FROM conflicts WHERE id = ?", [.integer(id)]).first,
              let tableName = record[0].string, let row = record[1].string, let column = record[2].string else { return notFound }
        if device == nil { return nil }
        guard let table = store.dataModel.table(named: tableName) else { return notFound }
        var visibility = Visibility(store: store, access: access, connection: connection)
        guard try visibility.canSee(table: tableName, row: row, column: column) else { return notFound }
        if let refusal = AccessRules.writeRefusal(table: table, column: column, access: access, model: store.dataModel) {
            return ChangeRejection(refusal.code, "the decision on conflict \(id) was not recorded: \(refusal.message)")
        }
        return nil
    }

    /// Forgets what was read, after the batch changed the store.
    mutating func forget() { rowHistories.removeAll() }

    mutating func isErased(_ table: String, _ row: String) throws -> Bool {
        // Erasures are rare: a table without any spares hashing every row id of the batch.
        if !(try hasErasures(table)) { return false }
        let address = PushContext.RowAddress(table: table, row: row)
        if let known = erased[address] { return known }
        let stmt = try connection.literalStatement("SELECT 1 FROM erased_rows WHERE tbl = ? AND row_id = ?")
        defer { stmt.reset() }
        try stmt.bind(table, at: 1)
        try stmt.bind(Erasure.erasedKey(row), at: 2)
        let result = try stmt.step()
        erased[address] = result
        return result
    }

    mutating func hasErasures(_ table: String) throws -> Bool {
        if let known = tablesWithErasures[table] { return known }
        let stmt = try connection.literalStatement("SELECT 1 FROM erased_rows WHERE tbl = ? LIMIT 1")
        defer { stmt.reset() }
        try stmt.bind(table, at: 1)
        let result = try stmt.step()
        tablesWithErasures[table] = result
        return result
    }

    /// The scopes a row is in now, the ones it left (with when), and, for a row that takes its
    /// scopes from a parent, the parent's: a new note is judged by the history of its case.
    mutating func history(of row: PushContext.RowAddress) throws -> [HeldScope] {
        if let known = rowHistories[row] { return known }
        var result: [HeldScope] = []
        let current = try connection.literalStatement("SELECT scope FROM row_scopes WHERE tbl = ? AND row_id = ?")
        try current.bind(row.table, at: 1)
        try current.bind(row.row, at: 2)
        while try current.step() { if let scope = current.text(0) { result.append(HeldScope(scope: scope, until: nil)) } }
        current.reset()
        let left = try connection.literalStatement("SELECT scope, at_ms, seq FROM evictions WHERE tbl = ? AND row_id = ? AND kind = 'evict'")
        try left.bind(row.table, at: 1)
        try left.bind(row.row, at: 2)
        while try left.step() {
            if let scope = left.text(0) { result.append(HeldScope(scope: scope, until: (left.int64(1), left.int64(2)))) }
        }
        left.reset()
        if case .parent(let column, let table)? = store.scopePlan.rules[row.table] {
            let target = try Records(connection, store: store).value(table: row.table, row: row.row, column: column)?.string
            if let target { result += try history(of: PushContext.RowAddress(table: table, row: target)) }
        }
        rowHistories[row] = result
        return result
    }
}
