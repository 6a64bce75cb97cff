import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import NIOSSL
import KeukentafelCompression
import KeukentafelProtocol
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// The request context of the sync API: Hummingbird's core storage plus the authenticated device.
public struct SyncRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var device: (id: String, name: String)?
    /// What the device's user may see and change.
    public var access: Access?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.device = nil
        self.access = nil
    }
}

/// Settings of the HTTP side of the server.
public struct SyncServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// The largest request body accepted, in bytes.
    public var maxRequestBytes: Int
    /// The most changes accepted in one push.
    public var maxBatchChanges: Int
    /// The longest a pull may wait for news (`wait=`), in seconds.
    public var maxWaitSeconds: Int
    /// Terminate TLS with this certificate chain and key (PEM files); `nil` serves plain HTTP (behind a
    /// TLS-terminating proxy, or on loopback).
    public var tls: TLSFiles?

    public struct TLSFiles: Sendable {
        public var certificateChain: String
        public var privateKey: String
        public init(certificateChain: String, privateKey: String) {
            self.certificateChain = certificateChain
            self.privateKey = privateKey
        }
    }

    public init(host: String = "127.0.0.1", port: Int = 8470, maxRequestBytes: Int = 16 * 1024 * 1024, maxBatchChanges: Int = 20_000,
                maxWaitSeconds: Int = 30, tls: TLSFiles? = nil) {
        self.host = host
        self.port = port
        self.maxRequestBytes = maxRequestBytes
        self.maxBatchChanges = maxBatchChanges
        self.maxWaitSeconds = maxWaitSeconds
        self.tls = tls
    }
}

/// The sync server: the `/v1` protocol over HTTP, in front of a `ServerStore`.
///
/// Read the routes top to bottom in `makeRouter()`; every handler is a few lines that decode,
/// call the store off the event loop, and encode.
public struct SyncServer: Sendable {
    public static let protocolVersion = 1
    public let store: any SyncStore
    public let configuration: SyncServerConfiguration
    public let logger: Logger
    /// Wakes long-polling pulls when a push commits.
    public let notifier = ChangeNotifier()
    public let metrics = ServerMetrics()

    public init(store: any SyncStore, configuration: SyncServerConfiguration, logger: Logger = Logger(label: "ktd")) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
    }

    public func makeRouter() -> Router<SyncRequestContext> {
        let router = Router(context: SyncRequestContext.self)
        router.add(middleware: MetricsMiddleware(metrics: metrics))
        router.add(middleware: JSONErrorMiddleware(logger: logger))
        router.get("/healthz") { _, _ in try json(["status": "ok"]) }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(bytes: metrics.scrape(store: store, notifier: notifier))))
        }
        router.get("/readyz") { _, _ in
            guard try await blocking({ store.isReady() }) else {
                throw APIError(.unavailable, "the store does not answer", status: .serviceUnavailable)
            }
            return try json(["status": "ready"])
        }

        let v1 = router.group("v1").add(middleware: BearerAuthMiddleware(store: store))
        v1.get("hello") { request, context in
            let access = try context.requireAccess()
            return try respond(try jsonBytes(HelloResponse(
                protocolVersion: Self.protocolVersion, serverTime: store.clock(), device: context.device?.id ?? "",
                user: access.userName, role: access.role.rawValue, scopes: access.scopes.sorted(), schema: store.dataModel)), to: request)
        }
        v1.post("push") { request, context in
            try await push(request, context: context)
        }
        v1.get("pull") { request, context in
            let started = ContinuousClock.now
            defer { metrics.pullDuration.recordNanoseconds((ContinuousClock.now - started).nanoseconds) }
            let since = try integerParameter(request, "since") ?? 0
            let limit = try integerParameter(request, "limit") ?? Int64(ServerStore.defaultPageSize)
            let wait = try integerParameter(request, "wait") ?? 0
            guard since >= 0, limit > 0, wait >= 0 else {
                throw APIError(.badRequest, "since and wait must be >= 0 and limit > 0")
            }
            let pageSize = Int(min(limit, Int64(ServerStore.maxPageSize)))
            let access = try context.requireAccess()
            let device = context.device?.id
            let epoch = request.uri.queryParameters["epoch"].map(String.init)
            let proof = request.uri.queryParameters["proof"].map(String.init)
            // Long-poll: with nothing new, wait for a push (or the deadline) before answering.
            let deadline = ContinuousClock.now + .seconds(min(wait, Int64(configuration.maxWaitSeconds)))
            while true {
                let generation = notifier.currentGeneration
                let page = try await blocking {
                    try store.pull(since: since, limit: pageSize, access: access, device: device, epoch: epoch, proof: proof)
                }
                let nothingNew = page.rows.isEmpty && page.conflicts.isEmpty && page.evictions.isEmpty && page.purges.isEmpty
                    && page.cursor == since && !page.resync
                if !nothingNew || ContinuousClock.now >= deadline || Task.isCancelled {
                    return try respond(try FeedCoding.encode(page), to: request)
                }
                await notifier.wait(after: generation, timeout: deadline - ContinuousClock.now)
            }
        }
        v1.get("history") { request, context in
            guard let table = request.uri.queryParameters["table"].map(String.init),
                  let row = request.uri.queryParameters["row"].map(String.init) else {
                throw APIError(.badRequest, "history needs table and row, e.g. ?table=cases&row=<uuid>[&column=status]")
            }
            let column = request.uri.queryParameters["column"].map(String.init)
            let access = try context.requireAccess()
            let entries = try await blocking { () -> [HistoryEntry] in
                guard let model = store.dataModel.table(named: table), try store.canSee(table: table, row: row, access: access) else {
                    return []
                }
                return try store.history(table: table, row: row, column: column)
                    .filter { AccessRules.canSee(column: $0.column, of: model, access: access, model: store.dataModel) }
            }
            return try respond(try jsonBytes(HistoryResponse(entries: entries)), to: request)
        }
        return router
    }

    func push(_ request: Request, context: SyncRequestContext) async throws -> Response {
        let started = ContinuousClock.now
        defer { metrics.pushDuration.recordNanoseconds((ContinuousClock.now - started).nanoseconds) }
        if let type = request.headers[.contentType], !type.lowercased().hasPrefix("application/json") {
            throw APIError(.unsupportedMediaType, "send the push as application/json", status: .unsupportedMediaType)
        }
        // A declared length over the limit is refused at once, not after waiting for a body that big.
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > configuration.maxRequestBytes {
            throw APIError(.requestTooLarge, "the body declares \(declared) bytes; at most \(configuration.maxRequestBytes) are accepted",
                           status: .contentTooLarge)
        }
        var body = try await request.body.collect(upTo: configuration.maxRequestBytes)
        switch request.headers[.contentEncoding]?.lowercased() {
        case nil, "identity": break
        case "gzip":
            let limit = configuration.maxRequestBytes * 4
            do {
                body = ByteBuffer(bytes: try body.withUnsafeReadableBytes { try Gzip.decompress($0, limit: limit) })
            } catch let error as Gzip.Error where error.tooLarge {
                throw APIError(.requestTooLarge, "the gzip body inflates beyond \(limit) bytes", status: .contentTooLarge)
            } catch {
                throw APIError(.malformedJSON, "the gzip body is corrupt or truncated: \(error)")
            }
        case let other?:
            throw APIError(.unsupportedMediaType, "Content-Encoding '\(other)' is not supported; use gzip or none",
                           status: .unsupportedMediaType)
        }
        let pushRequest: PushRequest
        do {
            pushRequest = try body.withUnsafeReadableBytes { try FeedCoding.decodePush($0) }
        } catch {
            throw APIError(.malformedJSON, "the push body is not a valid push request: \(describe(error))")
        }
        guard pushRequest.changes.count <= configuration.maxBatchChanges else {
            throw APIError(.batchTooLarge, "at most \(configuration.maxBatchChanges) changes per push, got \(pushRequest.changes.count)",
                           status: .contentTooLarge)
        }
        let device = context.device?.id ?? ""
        let access = try context.requireAccess()
        let response = try await blocking {
            try store.push(pushRequest.changes, device: device, node: pushRequest.node, access: access,
                           clientSchemaVersion: pushRequest.schemaVersion,
                           rejectedWhileDecoding: pushRequest.rejectedWhileDecoding, resolutions: pushRequest.resolutions ?? [])
        }
        notifier.signal()
        metrics.changes(response.results)
        return try respond(FeedCoding.encode(response), to: request)
    }

    /// Builds the Hummingbird application. `onRunning` receives the bound port (useful with port 0).
    /// Throws when the TLS certificate or key cannot be read.
    public func makeApplication(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) throws -> some ApplicationProtocol {
        // Small header limits (a device sends a handful of short headers) and an idle timeout longer
        // than the longest long-poll, so abandoned connections do not pile up.
        let http1 = HTTPServerBuilder.http1(configuration: .init(
            additionalChannelHandlers: [MalformedHTTPHandler()],
            idleTimeout: .seconds(Int64(configuration.maxWaitSeconds + 45)),
            httpDecoderConfiguration: .init(maxHeaderFieldSize: 16 * 1024, maxHeaderListSize: 32 * 1024, maxHeaderFieldCount: 100)))
        return Application(
            router: makeRouter(),
            server: try configuration.tls.map { try .tls(http1, tlsConfiguration: try Self.tlsConfiguration($0)) } ?? http1,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "ktd"),
            services: store.hasOtherWriters ? [OtherWritersWatcher(store: store, notifier: notifier)] : [],
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
    }

    static func tlsConfiguration(_ files: SyncServerConfiguration.TLSFiles) throws -> TLSConfiguration {
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        do {
            chain = try NIOSSLCertificate.fromPEMFile(files.certificateChain)
        } catch {
            throw TLSSetupError(description: "cannot read the TLS certificate chain '\(files.certificateChain)' (PEM expected): \(error)")
        }
        do {
            key = try NIOSSLPrivateKey(file: files.privateKey, format: .pem)
        } catch {
            throw TLSSetupError(description: "cannot read the TLS private key '\(files.privateKey)' (PEM expected): \(error)")
        }
        guard !chain.isEmpty else { throw TLSSetupError(description: "'\(files.certificateChain)' holds no certificate") }
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.minimumTLSVersion = .tlsv12
        return tls
    }
}

extension SyncRequestContext {
    /// The access of the authenticated device; every `/v1` route runs behind `BearerAuthMiddleware`.
    func requireAccess() throws -> Access {
        guard let access else { throw APIError(.unauthorized, "authentication required", status: .unauthorized) }
        return access
    }
}

/// A TLS certificate or key that cannot be used.
public struct TLSSetupError: Error, CustomStringConvertible {
    public var description: String
}

/// Runs blocking store work on NIO's thread pool, never on the event loop or the cooperative pool.
func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await NIOThreadPool.singleton.runIfActive(work)
}

func jsonBytes(_ value: some Encodable) throws -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.withoutEscapingSlashes]
    return Array(try encoder.encode(value))
}

/// A 200 JSON response, gzip-compressed when the client accepts it and the body is worth it.
func respond(_ body: [UInt8], to request: Request) throws -> Response {
    let acceptsGzip = request.headers[.acceptEncoding]?.lowercased().contains("gzip") ?? false
    if acceptsGzip, body.count >= 1024 {
        return Response(status: .ok, headers: [.contentType: "application/json", .contentEncoding: "gzip"],
                        body: .init(byteBuffer: ByteBuffer(bytes: try Gzip.compress(body))))
    }
    return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
}

func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.withoutEscapingSlashes]
    let data = try encoder.encode(value)
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

func integerParameter(_ request: Request, _ name: String) throws -> Int64? {
    guard let text = request.uri.queryParameters[name[...]] else { return nil }
    guard let value = Int64(text) else { throw APIError(.badRequest, "query parameter '\(name)' must be an integer") }
    return value
}

func describe(_ error: any Error) -> String {
    switch error {
    case DecodingError.dataCorrupted(let context), DecodingError.typeMismatch(_, let context),
         DecodingError.valueNotFound(_, let context):
        let path = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        return path.isEmpty ? context.debugDescription : "at \(path): \(context.debugDescription)"
    case DecodingError.keyNotFound(let key, let context):
        let path = (context.codingPath + [key]).map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        return "missing field \(path)"
    default:
        return "\(error)"
    }
}

/// An error with a stable code that becomes a JSON error response.
struct APIError: Error {
    var code: ErrorCode
    var message: String
    var status: HTTPResponse.Status

    init(_ code: ErrorCode, _ message: String, status: HTTPResponse.Status = .badRequest) {
        self.code = code
        self.message = message
        self.status = status
    }
}

/// Turns every error into `{"error": {"code", "message"}}` with a fitting status, so no client ever
/// has to parse an HTML or empty error page.
struct JSONErrorMiddleware: RouterMiddleware {
    typealias Context = SyncRequestContext
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return try errorResponse(error.code, error.message, error.status)
        } catch let refusal as StoreRefusal {
            return try errorResponse(refusal.code, refusal.message, refusal.code == .cursorAhead ? .badRequest : .conflict)
        } catch let error as HTTPParserError {
            // A body the parser cannot read (a bad chunk size, a missing CRLF): the client's fault. The
            // connection cannot carry another request, so it is closed after this answer.
            var response = try errorResponse(.malformedHTTP, "the request body is not well-formed HTTP/1.1 (\(error))", .badRequest)
            response.headers[.connection] = "close"
            return response
        } catch let error as any HTTPResponseError {
            switch error.status {
            case .notFound:
                if let allowed = Self.methods[request.uri.path], !allowed.contains(request.method) {
                    var response = try errorResponse(.methodNotAllowed, "\(request.method) is not allowed on \(request.uri.path); use "
                        + allowed.map(\.rawValue).sorted().joined(separator: " or "), .methodNotAllowed)
                    response.headers[.allow] = allowed.map(\.rawValue).sorted().joined(separator: ", ")
                    return response
                }
                return try errorResponse(.notFound, "no such endpoint: \(request.method) \(request.uri.path)", .notFound)
            case .methodNotAllowed: return try errorResponse(.methodNotAllowed, "\(request.method) is not allowed here", .methodNotAllowed)
            case .contentTooLarge: return try errorResponse(.requestTooLarge, "the request body is too large", .contentTooLarge)
            case .unauthorized: return try errorResponse(.unauthorized, "authentication required", .unauthorized)
            default: return try errorResponse(.badRequest, "\(error.status.reasonPhrase)", error.status)
            }
        } catch {
            logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return try errorResponse(.internalError, "the server could not complete the request; it was logged", .internalServerError)
        }
    }

    func errorResponse(_ code: ErrorCode, _ message: String, _ status: HTTPResponse.Status) throws -> Response {
        var response = try json(ErrorResponse(code: code, message: message), status: status)
        // A body refused unread may still be arriving: end the connection instead of reading it.
        if status == .contentTooLarge { response.headers[.connection] = "close" }
        return response
    }

    /// The methods of every endpoint, so a wrong method answers 405 rather than 404.
    static let methods: [String: Set<HTTPRequest.Method>] = [
        "/healthz": [.get], "/readyz": [.get], "/metrics": [.get],
        "/v1/hello": [.get], "/v1/push": [.post], "/v1/pull": [.get], "/v1/history": [.get],
    ]
}

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

/// Wakes this process's long-polls when another `ktd` on the same database commits a push.
struct OtherWritersWatcher: Service {
    let store: any SyncStore
    let notifier: ChangeNotifier

    func run() async throws {
        let notifier = self.notifier
        try await cancelWhenGracefulShutdown {
            try await store.watchOtherWriters { notifier.signal() }
        }
    }
}
