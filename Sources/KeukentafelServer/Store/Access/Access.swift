import KeukentafelProtocol

/// What a user does with the data, which decides what they may see and change.
public enum Role: String, Codable, Sendable, CaseIterable {
    /// A consultant of a sociaal team: reads and writes the rows in their scopes.
    case consultant
    /// The back office: as a consultant, and may also change reference data (teams, municipalities).
    case backOffice = "back-office"
    /// A partner organisation: only the tables and columns its partner profile grants, in its scopes.
    case partner
    /// Reads the rows in their scopes, changes nothing.
    case auditor
    /// Everything, everywhere (functioneel beheer).
    case admin

    /// What the role may do, in one line (`ktd admin user list`).
    public var summary: String {
        switch self {
        case .consultant: return "reads and writes the rows in their scopes"
        case .backOffice: return "as consultant, and may change reference data (teams, municipalities)"
        case .partner: return "only the tables and columns of their partner profile, in their scopes"
        case .auditor: return "reads the rows in their scopes, changes nothing"
        case .admin: return "reads and writes everything"
        }
    }
}

/// Who is asking, with what they may see and change: the user behind an authenticated device.
///
/// Scopes are keys such as `team:castricum-noord` or `municipality:heiloo`: the name of a table's
/// `own` scope column, a colon, and the value of that column. `*` stands for every scope.
public struct Access: Sendable, Equatable {
    /// The user's id in the store.
    public var userID: String
    /// The user's name, for messages and the audit trail.
    public var userName: String
    /// What the user does with the data.
    public var role: Role
    /// The scope keys the user holds now.
    public var scopes: Set<String>
    /// For partners: the name of their profile in the data model.
    public var profile: String?

    /// The scope key that stands for every scope.
    public static let everyScope = "*"

    /// The access of a user with `role`, `scopes` and, for partners, a profile.
    public init(userID: String, userName: String, role: Role, scopes: Set<String>, profile: String? = nil) {
        self.userID = userID
        self.userName = userName
        self.role = role
        self.scopes = scopes
        self.profile = profile
    }

    /// The server itself (`ktd admin demo`, office resolutions): no restriction at all.
    public static let system = Access(userID: "", userName: "system", role: .admin, scopes: [everyScope])

    /// Whether every row is in scope (confidential rows still need an explicit scope).
    public var seesEveryScope: Bool { role == .admin || scopes.contains(Self.everyScope) }
}

/// The access rules as pure functions over what the store knows about a row, so they can be tested
/// exhaustively without a database. The store gathers the facts; these decide.
public enum AccessRules {
    /// Whether `access` may see a row of `table` whose scopes are `rowScopes`.
    public static func canSee(table: DataModel.Table, rowScopes: Set<String>, confidential: Bool,
                              access: Access, model: DataModel) -> Bool {
        if access.role == .partner {
            guard let profile = access.profile.flatMap(model.partnerProfile(named:)), profile.grant(for: table.name) != nil,
                  !confidential else { return false }
        }
        if confidential {
            // Confidential notes stay within the case's own team: an explicit scope, never `*`.
            guard access.role == .consultant || access.role == .backOffice else { return false }
            return !rowScopes.isDisjoint(with: access.scopes)
        }
        if table.scope?.global == true || table.scope == nil || access.seesEveryScope { return true }
        return !rowScopes.isDisjoint(with: access.scopes)
    }

    /// Whether `access` may see `column` of a row it can see (partners see only granted columns).
    public static func canSee(column: String, of table: DataModel.Table, access: Access, model: DataModel) -> Bool {
        guard access.role == .partner else { return true }
        guard let grant = access.profile.flatMap(model.partnerProfile(named:))?.grant(for: table.name) else { return false }
        return column == Merge.deletedColumn || grant.columns.map { $0.contains(column) } ?? true
    }

    /// Why `access` may not change `column` of `table` at all, whatever the row; `nil` if it may.
    public static func writeRefusal(table: DataModel.Table, column: String, access: Access, model: DataModel) -> ChangeRejection? {
        switch access.role {
        case .auditor:
            return ChangeRejection(.readOnly, "\(access.userName) is an auditor: auditors read, they do not change data")
        case .partner:
            guard canSee(column: column, of: table, access: access, model: model) else {
                return ChangeRejection(.notPermitted, "the partner profile '\(access.profile ?? "none")' does not grant \(table.name).\(column)")
            }
        case .consultant, .backOffice, .admin:
            break
        }
        if table.scope?.global == true, access.role != .backOffice, access.role != .admin {
            return ChangeRejection(.notPermitted, "\(table.name) is reference data; only back office and admins change it")
        }
        return nil
    }

    /// Whether a row with scopes `rowScopes` at the time of writing may be written by a user who
    /// held `userScopes` at that time. Global tables are decided by `writeRefusal` alone.
    public static func mayWrite(table: DataModel.Table, rowScopesWhenWritten: Set<String>, userScopesWhenWritten: Set<String>,
                                access: Access) -> Bool {
        if table.scope?.global == true || table.scope == nil || access.seesEveryScope { return true }
        return !rowScopesWhenWritten.isDisjoint(with: userScopesWhenWritten)
    }

    /// Whether `access` may point a reference at an existing row of `table` (a case at a resident, a care
    /// relation at a carer): only at a row it could see when writing, since the link makes the row
    /// visible wherever the referring row is (decision 0017). Partners only at tables of their profile.
    public static func mayReference(table: DataModel.Table, rowScopesWhenWritten: Set<String>, userScopesWhenWritten: Set<String>,
                                    access: Access, model: DataModel) -> Bool {
        if access.role == .partner, access.profile.flatMap(model.partnerProfile(named:))?.grant(for: table.name) == nil { return false }
        return mayWrite(table: table, rowScopesWhenWritten: rowScopesWhenWritten, userScopesWhenWritten: userScopesWhenWritten, access: access)
    }
}
