import Foundation
import Hummingbird
import KeukentafelCompression
import KeukentafelProtocol
import Logging
import NIOCore
import ServiceLifecycle

/// The sync server: the `/v1` protocol over HTTP, in front of a `ServerStore`.
///
/// Read the routes top to bottom in `makeRouter()`; every handler is a few lines that decode,
/// call the store off the event loop, and encode.
public struct SyncServer: Sendable {
    /// The protocol version `/v1/hello` reports.
    public static let protocolVersion = 1
    /// The store behind the protocol.
    public let store: any SyncStore
    /// Address, limits and TLS.
    public let configuration: SyncServerConfiguration
    /// Where request failures are logged.
    public let logger: Logger
    /// Wakes long-polling pulls when a push commits.
    public let notifier = ChangeNotifier()
    /// Notes what pulls sent, many devices per transaction.
    let deliveries: DeliveryBatcher
    /// Request, push and pull metrics for `/metrics`.
    public let metrics = ServerMetrics()
    /// Failed authentications per client address (`AuthFailureLimiter`).
    let authLimiter = AuthFailureLimiter()
    /// The TLS certificate and key, once read (`tlsCertificates()`).
    let tlsState = Locked<TLSCertificates?>(nil)

    /// A server for `store` with `configuration`.
    public init(store: any SyncStore, configuration: SyncServerConfiguration, logger: Logger = Logger(label: "ktd")) {
        self.store = store
        self.deliveries = DeliveryBatcher(store: store)
        self.configuration = configuration
        self.logger = logger
    }

    /// Every route of the server, top to bottom.
    public func makeRouter() -> Router<SyncRequestContext> {
        let router = Router(context: SyncRequestContext.self)
        router.add(middleware: RequestLogMiddleware(logger: logger))
        router.add(middleware: MetricsMiddleware(metrics: metrics))
        router.add(middleware: JSONErrorMiddleware(logger: logger))
        router.get("/healthz") { _, _ in try json(["status": "ok"]) }
        // /metrics is not here: it has a listener of its own (`makeMetricsApplication`), so that the
        // device API does not tell the internet how busy the server is.
        router.get("/readyz") { _, _ in
            guard try await blocking({ store.isReady() }) else {
                throw APIError(.unavailable, "the store does not answer", status: .serviceUnavailable)
            }
            return try json(["status": "ready"])
        }

        let v1 = router.group("v1").add(middleware: BearerAuthMiddleware(store: store, limiter: authLimiter, logger: logger))
        v1.get("hello") { request, context in
            let access = try context.requireAccess()
            return try respond(try jsonBytes(HelloResponse(
                protocolVersion: Self.protocolVersion, serverTime: store.clock(), device: context.device?.id ?? "",
                user: access.userName, role: access.role.rawValue, scopes: access.scopes.sorted(), schema: store.dataModel)), to: request)
        }
        v1.post("push") { request, context in
            try await push(request, context: context)
        }
        v1.post("views") { request, context in
            try await views(request, context: context)
        }
        v1.post("wiped") { request, context in
            try await wiped(request, context: context)
        }
        v1.get("pull") { request, context in
            let started = ContinuousClock.now
            defer { metrics.pullDuration.recordNanoseconds((ContinuousClock.now - started).nanoseconds) }
            let since = try integerParameter(request, "since") ?? 0
            let limit = try integerParameter(request, "limit") ?? Int64(FeedReader.defaultPageSize)
            let wait = try integerParameter(request, "wait") ?? 0
            guard since >= 0, limit > 0, wait >= 0 else {
                throw APIError(.badRequest, "since and wait must be >= 0 and limit > 0")
            }
            let floor = try integerParameter(request, "floor")
            if let floor, floor < 0 || floor > since {
                throw APIError(.badRequest, "floor is where the pass through the feed started: from 0 to since (\(since)), not \(floor)")
            }
            let pageSize = Int(min(limit, Int64(FeedReader.maxPageSize)))
            let access = try context.requireAccess()
            let device = context.device?.id
            let epoch = request.uri.queryParameters["epoch"].map(String.init)
            let proof = request.uri.queryParameters["proof"].map(String.init)
            let skipOwn = request.uri.queryParameters["own"] == "skip"
            // Long-poll: with nothing new, wait for a push (or the deadline) before answering.
            let deadline = ContinuousClock.now + .seconds(min(wait, Int64(configuration.maxWaitSeconds)))
            while true {
                let generation = notifier.currentGeneration
                let (page, delivery) = try await blocking {
                    try store.pullPage(since: since, floor: floor, limit: pageSize, access: access, device: device, epoch: epoch, proof: proof,
                                       skipOwn: skipOwn)
                }
                // Noted before the page goes out, with the pages of the devices woken with this one.
                if let delivery { try await deliveries.record(delivery) }
                let nothingNew = page.rows.isEmpty && page.conflicts.isEmpty && page.evictions.isEmpty && page.purges.isEmpty
                    && page.cursor == since && !page.resync
                if !nothingNew || ContinuousClock.now >= deadline || Task.isCancelled || notifier.isClosed {
                    RequestFacts.current?.add(cells: page.rows.reduce(0) { $0 + $1.cells.count })
                    return try respond(try FeedCoding.encode(page), to: request)
                }
                // A graceful shutdown answers the parked long-polls at once instead of waiting them out.
                await withGracefulShutdownHandler {
                    // Only a push this device may see something of wakes it (issue 23).
                    let model = store.dataModel
                    await notifier.wait(after: generation, timeout: deadline - ContinuousClock.now) { footprint in
                        footprint.concerns(access, model: model)
                    }
                } onGracefulShutdown: {
                    notifier.close()
                }
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
        addAttachmentRoutes(to: v1)
        return router
    }
}
