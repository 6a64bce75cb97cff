import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import NIOCore
import NIOSSL
import ServiceLifecycle

extension SyncServer {
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
            server: try tlsCertificates().map { try .tls(http1, tlsConfiguration: $0.configuration()) } ?? http1,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "ktd"),
            services: store.hasOtherWriters ? [OtherWritersWatcher(store: store, notifier: notifier)] : [],
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
    }

    /// The certificate and key the server presents, read when the application is made; `reloadTLS()`
    /// reads them again.
    func tlsCertificates() throws -> TLSCertificates? {
        guard let files = configuration.tls else { return nil }
        return try tlsState.withLock { state in
            if let loaded = state { return loaded }
            let loaded = try TLSCertificates(files: files)
            state = loaded
            return loaded
        }
    }

    /// Reads the TLS certificate chain and key again (ktd does on SIGHUP); new handshakes use them,
    /// open connections keep theirs. Returns the new certificate's description, or nil without TLS.
    /// On a mistake it throws and the previous certificate stays in use.
    @discardableResult
    public func reloadTLS() throws -> String? {
        guard let certificates = try tlsCertificates() else { return nil }
        return try certificates.reload()
    }

    /// `GET /metrics` (Prometheus text format) and `GET /healthz` on an address of their own, by default
    /// loopback: for the monitoring system, not for devices.
    public func makeMetricsApplication(host: String, port: Int,
                                       onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        Application(router: makeMetricsRouter(), configuration: .init(address: .hostname(host, port: port), serverName: "ktd-metrics"),
                           onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) }, logger: logger)
    }

    /// The monitoring listener's routes.
    public func makeMetricsRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/metrics") { [metrics, store, notifier] _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(bytes: metrics.scrape(store: store, notifier: notifier))))
        }
        router.get("/healthz") { _, _ in "ok\n" }
        return router
    }
}

/// A TLS certificate or key that cannot be used.
public struct TLSSetupError: Error, CustomStringConvertible {
    /// What is wrong with the file.
    public var description: String
}

/// Wakes this process's long-polls when another `ktd` on the same database commits a push.
struct OtherWritersWatcher: Service {
    let store: any SyncStore
    let notifier: ChangeNotifier

    func run() async throws {
        let notifier = self.notifier
        try await cancelWhenGracefulShutdown {
            try await store.watchOtherWriters { footprint in notifier.signal(footprint) }
        }
    }
}
