import KeukentafelProtocol
import KeukentafelSQLite

/// Decides per pushed change whether its writer may make it (decision 0010):
///
/// - the role may change the table and column at all (`AccessRules.writeRefusal`);
/// - an erased row is never written again;
/// - the row was in one of the writer's scopes **when the change was written** (its HLC time): a
///   consultant who wrote notes offline before the case moved to another team still delivers them;
///   a write made after the move, or after the consultant lost the team, is refused (`out_of_scope`)
///   and stays on the device.
///
/// A row that already exists is judged on the store before the batch (so nobody can take over
/// another team's case by setting its team); a row the batch creates is judged after it (its scope
/// comes from the batch itself, e.g. a new case and its first visit).
struct PushAuthorizer {
    let access: Access
    let store: ServerStore
    let connection: any StoreConnection
    /// The writer's scopes, each with the time it was taken away (`nil`: still held).
    let userScopes: [(scope: String, until: Int64?)]
    private var rowHistories: [PushContext.RowAddress: [(scope: String, until: Int64?)]] = [:]
    /// Per row of the batch: whether it existed before it, and whether it was erased.
    private var existing: [PushContext.RowAddress: Bool] = [:]
    private var erased: [PushContext.RowAddress: Bool] = [:]
    private var tablesWithErasures: [String: Bool] = [:]

    init(access: Access, store: ServerStore, connection: any StoreConnection) throws {
        self.access = access
        self.store = store
        self.connection = connection
        var scopes: [(String, Int64?)] = access.scopes.map { ($0, nil) }
        if !access.seesEveryScope {
            for row in try connection.query("SELECT scope, removed_ms FROM user_scope_removals WHERE user_id = ?", [.text(access.userID)]) {
                if let scope = row[0].string, let until = row[1].int64 { scopes.append((scope, until)) }
            }
        }
        self.userScopes = scopes
    }

    /// Whether the row exists in the store (has any cell).
    mutating func exists(_ table: String, _ row: String) throws -> Bool {
        let address = PushContext.RowAddress(table: table, row: row)
        if let known = existing[address] { return known }
        let stmt = try connection.literalStatement("SELECT 1 FROM cells WHERE tbl = ? AND row_id = ? LIMIT 1")
        defer { stmt.reset() }
        try stmt.bind(table, at: 1)
        try stmt.bind(row, at: 2)
        let result = try stmt.step()
        existing[address] = result
        return result
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
        // A write in the same millisecond as the scope change counts as made before it.
        let written = Int64(change.version.milliseconds)
        let row = try history(of: PushContext.RowAddress(table: change.table, row: change.row))
        if AccessRules.mayWrite(table: table, rowScopesWhenWritten: Set(row.filter { ($0.until ?? .max) >= written }.map(\.scope)),
                                userScopesWhenWritten: Set(userScopes.filter { ($0.until ?? .max) >= written }.map(\.scope)),
                                access: access) {
            return nil
        }
        return ChangeRejection(.outOfScope, "\(change.table) \(change.row) is not in the scopes of \(access.userName)"
            + " (\(access.scopes.sorted().joined(separator: ", ")))"
            + " and was not when the change was written; it stays on the device")
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
        try stmt.bind(ServerStore.erasedKey(row), at: 2)
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
    mutating func history(of row: PushContext.RowAddress) throws -> [(scope: String, until: Int64?)] {
        if let known = rowHistories[row] { return known }
        var result: [(scope: String, until: Int64?)] = []
        let current = try connection.literalStatement("SELECT scope FROM row_scopes WHERE tbl = ? AND row_id = ?")
        try current.bind(row.table, at: 1)
        try current.bind(row.row, at: 2)
        while try current.step() { if let scope = current.text(0) { result.append((scope, nil)) } }
        current.reset()
        let left = try connection.literalStatement("SELECT scope, at_ms FROM evictions WHERE tbl = ? AND row_id = ? AND kind = 'evict'")
        try left.bind(row.table, at: 1)
        try left.bind(row.row, at: 2)
        while try left.step() { if let scope = left.text(0) { result.append((scope, left.int64(1))) } }
        left.reset()
        if case .parent(let column, let table)? = store.scopePlan.rules[row.table] {
            let parent = try connection.literalStatement("SELECT value FROM cells WHERE tbl = ? AND row_id = ? AND col = ?")
            try parent.bind(row.table, at: 1)
            try parent.bind(row.row, at: 2)
            try parent.bind(column, at: 3)
            let target = try parent.step() ? parent.text(0) : nil
            parent.reset()
            if let target { result += try history(of: PushContext.RowAddress(table: table, row: target)) }
        }
        rowHistories[row] = result
        return result
    }
}
