import KeukentafelSQLite

/// What the app's SQL may touch in a replica (SQLite's authorizer, see `SQLiteConnection.setAuthorizer`).
///
/// The `_kt_*` tables are the sync's bookkeeping: an app that deletes from `_kt_outbox` loses edits
/// that then never sync, and `_kt_meta` holds the device token. So the app, and `kt sql`, may read
/// the bookkeeping (conflicts, the outbox) but not `_kt_meta`, and may change none of it; only the
/// capture triggers (named `_kt_…`) write there. The triggers themselves, and the synced tables'
/// structure, are out of the app's reach too: a dropped trigger would stop capturing edits silently.
enum AppAccess {
    static let prefix = "_kt_"

    static func decide(_ access: SQLiteAccess, isSynced: (String) -> Bool) -> SQLiteAccessVerdict {
        // Whatever our own triggers do on the app's behalf is the sync's business.
        if let trigger = access.trigger, trigger.hasPrefix(prefix) { return .allow }
        switch access.action {
        case .read(let table, _) where table == "_kt_meta":
            return .deny(reason: "_kt_meta holds the replica's settings and device token; the app cannot read it "
                         + "(use Replica.status(), or `kt status`)")
        case .insert(let table), .update(let table, _), .delete(let table):
            guard table.hasPrefix(prefix) else { return .allow }
            return .deny(reason: "\(table) is the sync's bookkeeping and cannot be changed by the app; write the synced tables, "
                         + "and resolve conflicts with Replica.resolve (`kt conflicts resolve`)")
        case .createTrigger(let name, let table):
            if name.hasPrefix(prefix) || table.hasPrefix(prefix) || isSynced(table) {
                return .deny(reason: "triggers on synced tables and on _kt_* tables belong to the sync; the app cannot add one to \(table)")
            }
            return .allow
        case .dropTrigger(let name) where name.hasPrefix(prefix):
            return .deny(reason: "\(name) captures edits for the sync; dropping it would stop them from syncing")
        case .dropTable(let table), .alterTable(let table):
            guard table.hasPrefix(prefix) || isSynced(table) else { return .allow }
            return .deny(reason: "\(table) belongs to the data model; its structure changes only with `kt upgrade`")
        case .pragma("writable_schema"):
            return .deny(reason: "PRAGMA writable_schema would let the app rewrite the replica's structure")
        default:
            return .allow
        }
    }

    /// Read connections (`ReadPool`) cannot write at all; they only keep `_kt_meta` to themselves.
    static func decideRead(_ access: SQLiteAccess) -> SQLiteAccessVerdict {
        decide(access, isSynced: { _ in false })
    }
}
