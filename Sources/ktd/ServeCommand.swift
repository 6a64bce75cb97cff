import ArgumentParser
import Foundation
import KeukentafelProtocol
import KeukentafelTerminal
import KeukentafelServer
import Logging

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the sync server.",
        discussion: "Listens for the /v1 protocol (see Schemas/openapi.yaml). Stop with Ctrl-C or SIGTERM.")

    @OptionGroup var store: StoreOptions

    @Option(name: .long, help: ArgumentHelp(
        "Address and port to listen on; port 0 picks a free one. Environment: KT_LISTEN. Default: 127.0.0.1:8470", valueName: "host:port"))
    var listen: String?

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
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("listen takes host:port, e.g. 127.0.0.1:8470; got '\(listen)'")
        }
        let host = String(listen[..<colon])
        let certificate = file.value("tls-certificate", flag: tlsCertificate), key = file.value("tls-key", flag: tlsKey)
        guard (certificate == nil) == (key == nil) else {
            throw ValidationError("TLS needs both --tls-certificate and --tls-key (or neither, for plain HTTP behind a proxy)")
        }
        let tls = certificate.flatMap { certificate in key.map { SyncServerConfiguration.TLSFiles(certificateChain: certificate, privateKey: $0) } }
        LoggingSetup.bootstrap()
        let lock = store.postgres == nil ? try ServeLock(directory: store.data) : nil
        let serverStore = try store.openStore(maxClockSkewSeconds: maxClockSkew, creating: true)
        let logger = Logger(label: "ktd")
        let server = SyncServer(
            store: serverStore,
            configuration: SyncServerConfiguration(host: host, port: port, maxRequestBytes: maxRequestBytes, maxWaitSeconds: maxWait, tls: tls),
            logger: logger)
        let portFile = self.portFile
        let app = try server.makeApplication { boundPort in
            logger.info("ktd listening", metadata: ["address": "\(host):\(boundPort)", "store": "\(store.storeDescription)"])
            if let portFile { try? String(boundPort).write(toFile: portFile, atomically: true, encoding: .utf8) }
            print("ktd listening on \(tls == nil ? "http" : "https")://\(host):\(boundPort)")
            fflush(nil)  // all streams: scripts wait for this line
        }
        if stopWithParent { watchParent() }
        do {
            try await app.runService()
        } catch let error where "\(error)".contains("Address already in use") {
            throw ServeError("cannot listen on \(listen): the address is in use, by another ktd or another program "
                             + "(`ss -ltnp | grep :\(port)` shows which). Stop it, or choose another address with --listen host:port.")
        } catch let error where "\(error)".contains("Cannot assign requested address") {
            throw ServeError("cannot listen on \(listen): this machine has no such address. Use one of its own, e.g. 127.0.0.1:\(port) "
                             + "or 0.0.0.0:\(port) for every interface.")
        }
        withExtendedLifetime(lock) {}  // held until the server has stopped
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
