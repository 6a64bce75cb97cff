import Hummingbird
import HummingbirdCore

/// The request context of the sync API: Hummingbird's core storage plus the authenticated device.
public struct SyncRequestContext: RequestContext {
    /// Hummingbird's own storage.
    public var coreContext: CoreRequestContextStorage
    /// The authenticated device.
    public var device: (id: String, name: String)?
    /// What the device's user may see and change.
    public var access: Access?
    /// The client's address, for the log and for limiting failed authentications.
    public var remoteAddress: String?

    /// A context before authentication.
    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress?.ipAddress
        self.device = nil
        self.access = nil
    }
}

extension SyncRequestContext {
    /// The access of the authenticated device; every `/v1` route runs behind `BearerAuthMiddleware`.
    func requireAccess() throws -> Access {
        guard let access else { throw APIError(.unauthorized, "authentication required", status: .unauthorized) }
        return access
    }
}
