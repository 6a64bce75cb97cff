import Foundation
import KeukentafelProtocol

/// Who a token makes a device at a server, as the server's hello says it.
public struct DeviceIdentity: Sendable, Codable, Equatable {
    /// The server's id of the device the token belongs to.
    public var device: String
    /// The user the device belongs to, their role and scopes (`team:castricum-noord`, or `*` for all).
    public var user: String?
    public var role: String?
    public var scopes: [String]

    public init(device: String, user: String?, role: String?, scopes: [String]) {
        self.device = device
        self.user = user
        self.role = role
        self.scopes = scopes
    }

    init(_ hello: HelloResponse) {
        self.init(device: hello.device, user: hello.user, role: hello.role, scopes: hello.scopes ?? [])
    }
}

/// `GET /v1/hello`: the device the token belongs to, and the server's data model. Unreachable is
/// `SyncError.unreachable`; a refused token `SyncError.server` with the server's code (`unauthorized`,
/// `token_revoked`, `device_lost`, …).
public func fetchHello(_ transport: any SyncTransport) throws -> HelloResponse {
    let exchange: HTTPExchange
    do {
        exchange = try transport.send(method: "GET", path: "/v1/hello", query: [], body: nil)
    } catch let error as TransportError {
        throw SyncError.unreachable(error.message)
    }
    guard exchange.status == 200 else {
        let refusal = try? JSONDecoder().decode(ErrorResponse.self, from: exchange.body)
        throw SyncError.server(status: exchange.status, code: refusal?.error.code.rawValue ?? "http_\(exchange.status)",
                               message: refusal?.error.message ?? "HTTP \(exchange.status)")
    }
    do {
        return try JSONDecoder().decode(HelloResponse.self, from: exchange.body)
    } catch {
        throw SyncError.protocolMismatch("GET /v1/hello: \(error)")
    }
}
