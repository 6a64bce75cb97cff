import CSQLite

/// One access SQLite asks about while it compiles a statement (`sqlite3_set_authorizer`).
public struct SQLiteAccess: Sendable {
    public enum Action: Sendable, Equatable {
        case read(table: String, column: String)
        case insert(table: String)
        case update(table: String, column: String)
        case delete(table: String)
        case createTrigger(name: String, table: String)
        case dropTrigger(name: String)
        case dropTable(String)
        case alterTable(String)
        case pragma(String)
        /// Anything else (selects, functions, transactions, indexes, views, …).
        case other(code: Int32)
    }

    public var action: Action
    /// The inner-most trigger or view this access comes from; `nil` for the statement's own SQL.
    public var trigger: String?
}

/// What the authorizer answers.
public enum SQLiteAccessVerdict: Sendable {
    case allow
    /// The statement fails to compile with SQLITE_AUTH; the reason is kept in `lastDenial`.
    case deny(reason: String)
}

private final class AuthorizerBox {
    let decide: (SQLiteAccess) -> SQLiteAccessVerdict
    let denial: DenialSlot
    init(_ decide: @escaping (SQLiteAccess) -> SQLiteAccessVerdict, _ denial: DenialSlot) {
        self.decide = decide
        self.denial = denial
    }
}

/// The latest refusal's reason, kept by the connection so that it outlives an authorizer swapped in
/// for a moment (`tablesRead`).
final class DenialSlot {
    var reason: String?
}

extension SQLiteConnection {
    /// Installs (or, with `nil`, removes) a check SQLite runs on every table, column and trigger a
    /// statement touches while it compiles it. Statements prepared earlier (the statement cache) were
    /// checked then, not now.
    public func setAuthorizer(_ decide: ((SQLiteAccess) -> SQLiteAccessVerdict)?) {
        if let old = authorizerBox { Unmanaged<AnyObject>.fromOpaque(old).release() }
        authorizerBox = nil
        authorizerDecide = decide
        guard let decide else {
            sqlite3_set_authorizer(handle, nil, nil)
            return
        }
        let box = Unmanaged.passRetained(AuthorizerBox(decide, denialSlot) as AnyObject).toOpaque()
        authorizerBox = box
        sqlite3_set_authorizer(handle, { context, code, first, second, _, inner in
            let box = Unmanaged<AnyObject>.fromOpaque(context!).takeUnretainedValue() as! AuthorizerBox
            let a = first.map { String(cString: $0) } ?? ""
            let b = second.map { String(cString: $0) } ?? ""
            let action: SQLiteAccess.Action
            switch code {
            case SQLITE_READ: action = .read(table: a, column: b)
            case SQLITE_INSERT: action = .insert(table: a)
            case SQLITE_UPDATE: action = .update(table: a, column: b)
            case SQLITE_DELETE: action = .delete(table: a)
            case SQLITE_CREATE_TRIGGER, SQLITE_CREATE_TEMP_TRIGGER: action = .createTrigger(name: a, table: b)
            case SQLITE_DROP_TRIGGER, SQLITE_DROP_TEMP_TRIGGER: action = .dropTrigger(name: a)
            case SQLITE_DROP_TABLE, SQLITE_DROP_TEMP_TABLE: action = .dropTable(a)
            case SQLITE_ALTER_TABLE: action = .alterTable(b)
            case SQLITE_PRAGMA: action = .pragma(a.lowercased())
            default: action = .other(code: code)
            }
            switch box.decide(SQLiteAccess(action: action, trigger: inner.map { String(cString: $0) })) {
            case .allow: return SQLITE_OK
            case .deny(let reason):
                box.denial.reason = reason
                return SQLITE_DENY
            }
        }, box)
    }

    /// The reason of the authorizer's latest refusal, taken (and cleared) by whoever reports the error.
    public func takeDenial() -> String? {
        defer { denialSlot.reason = nil }
        return denialSlot.reason
    }
}
