import Foundation
import Hummingbird
import Logging

/// What a request's handlers learn that its log line should say (who it was, how many cells, why
/// it was refused). Handlers get a copy of the request context, so the facts travel in a task-local
/// box that the outermost middleware reads when the response is ready.
final class RequestFacts: @unchecked Sendable {
    @TaskLocal static var current: RequestFacts?

    private let lock = NSLock()
    private var _device: String?
    private var _user: String?
    private var _cells = 0
    private var _refusal: String?

    func authenticated(device: String, user: String?) { lock.withLock { _device = device; _user = user } }
    func add(cells: Int) { lock.withLock { _cells += cells } }
    func refused(_ code: String) { lock.withLock { _refusal = code } }

    /// Adds what the handlers learnt to a log line's metadata.
    func add(to metadata: inout Logger.Metadata) {
        lock.withLock {
            if let _device { metadata["device"] = .string(_device) }
            if let _user { metadata["user"] = .string(_user) }
            if _cells > 0 { metadata["cells"] = .stringConvertible(_cells) }
            if let _refusal { metadata["refused"] = .string(_refusal) }
        }
    }
}

/// One structured log line per request: route (not the path, which may hold ids), status, duration,
/// device and user, cells pushed or pulled, and why it was refused. A request slower than
/// `slowSeconds` (a long-poll's wait aside) is logged as a warning, so it stands out at any level.
struct RequestLogMiddleware: RouterMiddleware {
    typealias Context = SyncRequestContext
    let logger: Logger
    var slowSeconds: Double = 2

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let facts = RequestFacts()
        let started = ContinuousClock.now
        let response = try await RequestFacts.$current.withValue(facts) { try await next(request, context) }
        log(request, context: context, status: response.status.code, facts: facts, started: started)
        return response
    }

    /// Writes the request's line. Apart from `handle` and not async, so that its locals are not kept in
    /// the frame of a request that waits (see `JSONErrorMiddleware.response(for:to:)`).
    func log(_ request: Request, context: Context, status: Int, facts: RequestFacts, started: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        // Sized at once for every field a line can have: growing it showed when a push woke thousands of long-polls.
        var metadata = Logger.Metadata(minimumCapacity: 8)
        facts.add(to: &metadata)
        metadata["route"] = "\(request.method.rawValue) \(context.endpointPath ?? request.uri.path)"
        metadata["status"] = .stringConvertible(status)
        metadata["ms"] = .stringConvertible(Int((seconds * 1000).rounded()))
        if let address = context.remoteAddress { metadata["address"] = "\(address)" }
        // A long-poll is slow by design; its query is parsed only for a request that took that long.
        if seconds >= slowSeconds, !(request.uri.queryParameters["wait"].flatMap { Int($0) }.map { $0 > 0 } ?? false) {
            logger.warning("slow request", metadata: metadata)
        } else {
            logger.info("request", metadata: metadata)
        }
    }
}
