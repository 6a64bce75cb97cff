import Foundation

/// One HTTP exchange as the sync engine sees it.
public struct HTTPExchange: Sendable {
    public var status: Int
    public var body: Data
}

/// How the sync engine reaches the server. `CurlTransport` is the real one; tests wrap it to inject
/// faults they cannot cause otherwise (a response lost after the server committed).
public protocol SyncTransport: Sendable {
    /// Sends one request; `headers` are added to the transport's own (e.g. `Content-Encoding: gzip`).
    func send(method: String, path: String, query: [(String, String)], body: Data?, headers: [String]) throws -> HTTPExchange

    /// Sends one request that `cancellation` can end while it is in flight (throwing `CancellationError`).
    /// Transports that cannot stop a request midway use the default: refuse to start once cancelled.
    func send(method: String, path: String, query: [(String, String)], body: Data?, headers: [String],
              cancellation: RequestCancellation?) throws -> HTTPExchange
}

extension SyncTransport {
    public func send(method: String, path: String, query: [(String, String)], body: Data?, headers: [String],
                     cancellation: RequestCancellation?) throws -> HTTPExchange {
        try cancellation?.check()
        return try send(method: method, path: path, query: query, body: body, headers: headers)
    }

    public func send(method: String, path: String, query: [(String, String)], body: Data?) throws -> HTTPExchange {
        try send(method: method, path: path, query: query, body: body, headers: [])
    }
}

/// A failure to talk to the server at all: DNS, refused connection, timeout, TLS.
public struct TransportError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
    public init(message: String) { self.message = message }
}
