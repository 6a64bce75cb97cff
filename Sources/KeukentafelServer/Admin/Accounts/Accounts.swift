import Foundation
import KeukentafelProtocol
import KeukentafelSQLite

/// Users (people, with a role and scopes), the scopes they hold, and their devices with their tokens:
/// who may connect, and as whom (docs/access.md).
public struct Accounts: Sendable {
    let store: ServerStore

    init(store: ServerStore) { self.store = store }
}

/// An administrative request that cannot be done, with why.
public enum AdminError: Error, CustomStringConvertible {
    case invalid(String)
    case notFound(String)

    /// Why, for the person at the command line.
    public var description: String {
        switch self {
        case .invalid(let why): return why
        case .notFound(let what): return what
        }
    }
}
