import CSQLite

/// The tables changed by a connection's committed transactions, as SQLite's update, commit and
/// rollback hooks report them, for observers of a database (a replica's observed queries).
final class ChangeTracker {
    /// Changed by the transaction in progress.
    var pending: Set<String> = []
    /// Changed by transactions committed since the owner last took them.
    var committed: Set<String> = []
    /// The update hook's last table name pointer: SQLite passes the same one for every row of a table,
    /// so a page of thousands of rows makes one String, not thousands.
    var lastName: UnsafePointer<CChar>?
}

extension SQLiteConnection {
    /// Starts noting which tables this connection's transactions change (rowid tables; `WITHOUT
    /// ROWID` tables are not reported by SQLite's update hook). Take them with `takeCommittedChanges()`.
    public func trackChanges() {
        guard changeTracker == nil else { return }
        let tracker = ChangeTracker()
        changeTracker = tracker
        let context = Unmanaged.passUnretained(tracker).toOpaque()
        sqlite3_update_hook(handle, { context, _, _, table, _ in
            let tracker = Unmanaged<ChangeTracker>.fromOpaque(context!).takeUnretainedValue()
            guard let table, table != tracker.lastName else { return }
            tracker.lastName = table
            tracker.pending.insert(String(cString: table))
        }, context)
        sqlite3_commit_hook(handle, { context in
            let tracker = Unmanaged<ChangeTracker>.fromOpaque(context!).takeUnretainedValue()
            tracker.committed.formUnion(tracker.pending)
            tracker.pending.removeAll(keepingCapacity: true)
            tracker.lastName = nil
            return 0
        }, context)
        sqlite3_rollback_hook(handle, { context in
            let tracker = Unmanaged<ChangeTracker>.fromOpaque(context!).takeUnretainedValue()
            tracker.pending.removeAll(keepingCapacity: true)
            tracker.lastName = nil
        }, context)
    }

    /// The tables changed by transactions committed since the last call (empty when not tracking).
    public func takeCommittedChanges() -> Set<String> {
        guard let changeTracker, !changeTracker.committed.isEmpty else { return [] }
        defer { changeTracker.committed.removeAll() }
        return changeTracker.committed
    }

    /// Changes when another connection (in this process or another) commits to the database; a
    /// connection's own commits leave it alone.
    public func dataVersion() throws -> Int64 {
        guard case .integer(let version)? = try scalar("PRAGMA data_version") else { return 0 }
        return version
    }

    /// The tables `sql` reads (through views too), found by compiling it without running it.
    public func tablesRead(by sql: String) throws -> Set<String> {
        let previous = authorizerDecide
        var tables: Set<String> = []
        setAuthorizer { access in
            if case .read(let table, _) = access.action { tables.insert(table) }
            return previous?(access) ?? .allow
        }
        defer { setAuthorizer(previous) }
        _ = try prepare(sql)
        return tables
    }
}
