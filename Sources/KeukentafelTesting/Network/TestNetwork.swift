import Foundation
import KeukentafelClient

/// The network between one replica and the server, with switches for what real networks do to a
/// laptop: no network at all, an answer lost after the server acted on the request, an answer that
/// stops halfway. Use it as the engine's transport:
///
/// ```swift
/// let network = try TestNetwork(replica: laptop)
/// let engine = SyncEngine(replica: laptop, transport: network)
/// network.isOffline = true            // every request fails as unreachable
/// network.inject(.loseResponse, on: "/v1/push")   // the server applies the push; the laptop never hears
/// network.inject(.cutResponse, on: "/v1/pull")    // the next page arrives half
/// ```
public final class TestNetwork: SyncTransport, @unchecked Sendable {
    public enum Fault: Sendable, Equatable {
        /// The request reaches the server and is handled; its answer is lost (a connection reset).
        case loseResponse
        /// The answer's body stops halfway, with a success status (the client must notice itself).
        case cutResponse
        /// The request never leaves the laptop (no route, a captive portal).
        case unreachable
    }

    private let upstream: CurlTransport
    private let lock = NSLock()
    private var offline = false
    private var faults: [(fault: Fault, pathPrefix: String)] = []
    private var log: [String] = []

    /// The network to the server and with the token `replica` was made for.
    public convenience init(replica: Replica) throws {
        self.init(baseURL: try replica.serverURL, token: try replica.tokenForCommands)
    }

    public init(baseURL: String, token: String) {
        upstream = CurlTransport(baseURL: baseURL, token: token)
    }

    /// While true, every request fails as if the laptop had no network.
    public var isOffline: Bool {
        get { lock.withLock { offline } }
        set { lock.withLock { offline = newValue } }
    }

    /// The next request whose path starts with `pathPrefix` (`/v1/push`, `/v1/pull`, `/v1/hello`) meets
    /// `fault`; `times` requests in a row do.
    public func inject(_ fault: Fault, on pathPrefix: String, times: Int = 1) {
        lock.withLock { faults += Array(repeating: (fault, pathPrefix), count: times) }
    }

    /// The requests sent so far, as "GET /v1/pull", oldest first (faulty ones included).
    public var requests: [String] { lock.withLock { log } }

    /// How many injected faults have not happened yet.
    public var pendingFaults: Int { lock.withLock { faults.count } }

    public func send(method: String, path: String, query: [(String, String)], body: Data?, headers: [String]) throws -> HTTPExchange {
        try send(method: method, path: path, query: query, body: body, headers: headers, cancellation: nil)
    }

    public func send(method: String, path: String, query: [(String, String)], body: Data?, headers: [String],
                     cancellation: RequestCancellation?) throws -> HTTPExchange {
        let (isOffline, fault) = lock.withLock { () -> (Bool, Fault?) in
            log.append("\(method) \(path)")
            guard !offline else { return (true, nil) }
            guard let index = faults.firstIndex(where: { path.hasPrefix($0.pathPrefix) }) else { return (false, nil) }
            return (false, faults.remove(at: index).fault)
        }
        if isOffline || fault == .unreachable {
            throw TransportError(message: "cannot reach \(upstream.baseURL): the test network is off")
        }
        var exchange = try upstream.send(method: method, path: path, query: query, body: body, headers: headers, cancellation: cancellation)
        switch fault {
        case .loseResponse: throw TransportError(message: "cannot reach \(upstream.baseURL): connection reset (the test network lost the answer)")
        case .cutResponse: exchange.body = exchange.body.prefix(exchange.body.count / 2)
        case .unreachable, nil: break
        }
        return exchange
    }
}
