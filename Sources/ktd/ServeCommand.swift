import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import KeukentafelProtocol
import KeukentafelTerminal
import KeukentafelServer
import Logging
import ServiceLifecycle

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the sync server.",
        discussion: """
            Listens for the /v1 protocol (see Schemas/openapi.json). Stop with Ctrl-C or SIGTERM. SIGHUP reads the
            TLS certificate and key again (a renewed certificate without a restart; open connections keep theirs).
            Logs go to standard error: plain text on a terminal, one JSON object per line otherwise (journald),
            one line per request (route, status, ms, device, user, cells, address, why refused) plus start,
            stop, slow requests and floods of bad tokens. LOG_LEVEL=debug|info|warning|error (default info;
            warning keeps only what needs attention).
            """)

    @OptionGroup var store: StoreOptions

    @Option(name: .long, help: ArgumentHelp(
        "Address and port to listen on; port 0 picks a free one. Environment: KT_LISTEN. Default: 127.0.0.1:8470", valueName: "host:port"))
    var listen: String?

    @Option(name: .long, help: ArgumentHelp(
        "Serve /metrics (Prometheus) and /healthz on this address, apart from the devices' API; 'off' for none. "
        + "Environment: KT_METRICS_LISTEN. Default: 127.0.0.1 on the --listen port + 1000 (9470 for 8470).", valueName: "host:port"))
    var metricsListen: String?

    @Option(name: .long, help: "Refuse versions more than this many seconds ahead of the server clock. Environment: KT_MAX_CLOCK_SKEW. Default: 300")
    var maxClockSkew: Int?

    @Option(name: .long, help: "Largest accepted request body in bytes. Environment: KT_MAX_REQUEST_BYTES. Default: 16 MiB")
    var maxRequestBytes: Int?

    @Option(name: .long, help: "Longest a pull may wait for news (wait=), in seconds. Environment: KT_MAX_WAIT. Default: 30")
    var maxWait: Int?

    @Option(name: .long, help: ArgumentHelp(
        "Serve HTTPS with this certificate chain (PEM; the server's certificate first). Needs --tls-key. Environment: KT_TLS_CERTIFICATE.",
        valueName: "file"))
    var tlsCertificate: String?

    @Option(name: .long, help: ArgumentHelp("The private key (PEM) of --tls-certificate. Environment: KT_TLS_KEY.", valueName: "file"))
    var tlsKey: String?

    @Option(name: .long, help: ArgumentHelp("Write the bound port to this file once listening (for scripts and tests).", valueName: "file"))
    var portFile: String?

    @Flag(help: "Exit when the process that started ktd exits (for tests and scripts).")
    var stopWithParent = false

    func run() async throws {
        let file = try store.configFile()
        let listen = file.value("listen", flag: self.listen) ?? "127.0.0.1:8470"
        let maxClockSkew = try file.integer("max-clock-skew", flag: self.maxClockSkew, default: 300)
        let maxRequestBytes = try file.integer("max-request-bytes", flag: self.maxRequestBytes, default: 16 * 1024 * 1024)
        let maxWait = try file.integer("max-wait", flag: self.maxWait, default: 30)
        let (host, port) = try Self.hostAndPort(listen, option: "listen", example: "127.0.0.1:8470")
        let metricsAddress: (host: String, port: Int)?
        switch file.value("metrics-listen", flag: self.metricsListen) {
        case "off": metricsAddress = nil
        case let value?: metricsAddress = try Self.hostAndPort(value, option: "metrics-listen", example: "127.0.0.1:9470")
        case nil:
            guard port == 0 || port + 1000 <= 65535 else {
                throw ValidationError("the metrics port would be \(port + 1000), which does not exist: give --metrics-listen host:port (or off)")
            }
            metricsAddress = ("127.0.0.1", port == 0 ? 0 : port + 1000)
        }
        let certificate = file.value("tls-certificate", flag: tlsCertificate), key = file.value("tls-key", flag: tlsKey)
        guard (certificate == nil) == (key == nil) else {
            throw ValidationError("TLS needs both --tls-certificate and --tls-key (or neither, for plain HTTP behind a proxy)")
        }
        let tls = certificate.flatMap { certificate in key.map { SyncServerConfiguration.TLSFiles(certificateChain: certificate, privateKey: $0) } }
        LoggingSetup.bootstrap()
        let openFiles = OpenFileLimit.raise()
        let lock = store.postgres == nil ? try ServeLock(directory: store.data) : nil
        let serverStore = try store.openStore(maxClockSkewSeconds: maxClockSkew, creating: true)
        let logger = Logger(label: "ktd")
        let server = SyncServer(
            store: serverStore,
            configuration: SyncServerConfiguration(host: host, port: port, maxRequestBytes: maxRequestBytes, maxWaitSeconds: maxWait, tls: tls),
            logger: logger)
        let portFile = self.portFile
        let app = try server.makeApplication { boundPort in
            logger.info("ktd listening", metadata: ["address": "\(host):\(boundPort)", "store": "\(store.storeDescription)",
                                                    "open_files": "\(openFiles)"])
            if let portFile { try? String(boundPort).write(toFile: portFile, atomically: true, encoding: .utf8) }
            print("ktd listening on \(tls == nil ? "http" : "https")://\(host):\(boundPort)")
            fflush(nil)  // all streams: scripts wait for this line
        }
        var services: [any Service] = [app, ReloadOnHangup(server: server, logger: logger)]
        if let metricsAddress {
            services.append(server.makeMetricsApplication(host: metricsAddress.host, port: metricsAddress.port) { boundPort in
                logger.info("ktd metrics listening", metadata: ["address": "\(metricsAddress.host):\(boundPort)"])
                print("ktd metrics on http://\(metricsAddress.host):\(boundPort)/metrics")
                fflush(nil)
            })
        }
        if stopWithParent { watchParent() }
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch let error where "\(error)".contains("Address already in use") {
            // Which of the two addresses: the one that cannot be bound now.
            let taken = [(host, port, "--listen"), metricsAddress.map { ($0.host, $0.port, "--metrics-listen") }].compactMap { $0 }
                .first { !Self.canBind(host: $0.0, port: $0.1) } ?? (host, port, "--listen")
            throw ServeError("cannot listen on \(taken.0):\(taken.1): the address is in use, by another ktd or another program "
                             + "(`ss -ltnp | grep :\(taken.1)` shows which). Stop it, or choose another address with \(taken.2) host:port.")
        } catch let error where "\(error)".contains("Cannot assign requested address") {
            throw ServeError("cannot listen on \(listen): this machine has no such address. Use one of its own, e.g. 127.0.0.1:\(port) "
                             + "or 0.0.0.0:\(port) for every interface.")
        }
        logger.info("ktd stopped", metadata: ["address": "\(listen)"])
        withExtendedLifetime(lock) {}  // held until the server has stopped
    }
}

extension Serve {
    static func hostAndPort(_ value: String, option: String, example: String) throws -> (String, Int) {
        guard let colon = value.lastIndex(of: ":"), let port = Int(value[value.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("\(option) takes host:port, e.g. \(example); got '\(value)'")
        }
        return (String(value[..<colon]), port)
    }

    /// Whether an IPv4 address and port could be listened on now (for an error message only).
    static func canBind(host: String, port: Int) -> Bool {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { return true }
        defer { close(socket) }
        var yes: Int32 = 1
        setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &address.sin_addr) == 1 else { return true }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

/// Exits once the parent process is gone, so a server started by a test never outlives it.
func watchParent() {
    let parent = getppid()
    Thread.detachNewThread {
        while getppid() == parent { Thread.sleep(forTimeInterval: 0.5) }
        exit(0)
    }
}
