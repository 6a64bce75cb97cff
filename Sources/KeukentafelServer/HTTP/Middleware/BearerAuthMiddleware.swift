import Hummingbird

/// Authenticates `Authorization: Bearer <token>` against the device table on every request, so a
/// revoked token is refused at once.
struct BearerAuthMiddleware: RouterMiddleware {
    typealias Context = SyncRequestContext
    let store: any SyncStore

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else {
            throw APIError(.unauthorized, "send the device token as 'Authorization: Bearer <token>'", status: .unauthorized)
        }
        let token = String(header.dropFirst("Bearer ".count))
        guard token.utf8.count <= 200 else { throw APIError(.unauthorized, "unknown device token", status: .unauthorized) }
        switch try await blocking({ try store.authenticate(token: token) }) {
        case .device(let id, let name, let access):
            var context = context
            context.device = (id, name)
            context.access = access
            return try await next(request, context)
        case .revoked:
            throw APIError(.tokenRevoked, "this device's token was revoked; ask the office for a new one", status: .unauthorized)
        case .lost:
            throw APIError(.deviceLost, "this device was reported lost; its replica deletes itself", status: .gone)
        case .userDisabled:
            throw APIError(.userDisabled, "the user of this device is disabled or unknown; ask the office", status: .unauthorized)
        case .unknown:
            throw APIError(.unauthorized, "unknown device token", status: .unauthorized)
        }
    }
}
