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
            try await pull(request, context: context)
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
