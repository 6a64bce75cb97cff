import Hummingbird
import KeukentafelProtocol
import Logging

/// Authenticates `Authorization: Bearer <token>` against the device table on every request, so a
/// revoked token is refused at once.
struct BearerAuthMiddleware: RouterMiddleware {
    typealias Context = SyncRequestContext
    let store: any SyncStore
    let limiter: AuthFailureLimiter
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // A valid token always gets in, also from an address that is refused: a whole office behind one
        // NAT address must not be locked out by one laptop with a revoked token.
        let flooding = !limiter.allows(context.remoteAddress, logger: logger)
        let device: Context
        do {
            device = try await authenticated(request, context: context)
        } catch let error as APIError {
            limiter.failed(context.remoteAddress)
            if flooding {
                RequestFacts.current?.refused(ErrorCode.tooManyFailures.rawValue)
                throw APIError(.tooManyFailures, "too many failed authentications from this address; try again in a minute",
                               status: .tooManyRequests)
            }
            RequestFacts.current?.refused(error.code.rawValue)
            throw error
        }
        return try await next(request, device)
    }

    /// The context with the device the token belongs to, or the refusal.
    private func authenticated(_ request: Request, context: Context) async throws -> Context {
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
            RequestFacts.current?.authenticated(device: name, user: access.userName)
            return context
        case .revoked:
            throw APIError(.tokenRevoked, "this device's token was revoked; ask the office for a new one", status: .unauthorized)
        case .lost(let id, let name):
            // The one request a lost device may still make: the receipt of its wipe.
            guard request.method == .post, request.uri.path == "/v1/wiped" else {
                throw APIError(.deviceLost, "this device was reported lost; its replica deletes itself", status: .gone)
            }
            var context = context
            context.device = (id, name)
            RequestFacts.current?.authenticated(device: name, user: "")
            return context
        case .userDisabled:
            throw APIError(.userDisabled, "the user of this device is disabled or unknown; ask the office", status: .unauthorized)
        case .unknown:
            throw APIError(.unauthorized, "unknown device token", status: .unauthorized)
        }
    }
}
