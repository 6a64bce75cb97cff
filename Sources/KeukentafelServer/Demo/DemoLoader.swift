import KeukentafelProtocol

/// Loads the demo people and users into a store (`ktd admin demo`).
public struct DemoLoader: Sendable {
    let store: ServerStore

    init(store: ServerStore) { self.store = store }

    /// Loads the demo data as writes of the office. Running it twice changes nothing.
    public func load() throws -> PushResponse {
        try store.push(DemoData.rows(node: store.node, milliseconds: UInt64(store.clock())), device: "demo")
    }
}

extension DemoLoader {
    /// The demo's people who use Keukentafel, one per role; added only if missing.
    public static let users: [(name: String, role: Role, profile: String?, scopes: [String])] = [
        ("fatima", .consultant, nil, ["team:castricum-noord", "municipality:castricum"]),
        ("anne", .backOffice, nil, ["*"]),
        ("joyce", .partner, "mantelzorgcentrum", ["team:castricum-noord", "team:bergen"]),
        ("ruud", .auditor, nil, ["*"]),
    ]

    /// Adds the demo users (fatima, consultant of castricum-noord; anne, back office; joyce of the
    /// carers' centre; ruud, auditor) unless they exist.
    public func addUsers(actor: String) throws {
        let existing = Set(try store.accounts.users().map(\.name))
        for user in Self.users where !existing.contains(user.name) {
            guard user.profile.map({ store.dataModel.partnerProfile(named: $0) != nil }) ?? true else { continue }
            _ = try store.accounts.addUser(name: user.name, role: user.role, profile: user.profile, actor: actor)
            for scope in user.scopes { _ = try store.accounts.addScope(scope, to: user.name, actor: actor) }
        }
    }
}
