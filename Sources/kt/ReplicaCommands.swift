import ArgumentParser
import Foundation
import KeukentafelClient
import KeukentafelProtocol
import KeukentafelTerminal

// Making a replica (`kt init`) and bringing it to the server's data model (`kt upgrade`).
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a replica connected to a server.",
        discussion: "Fetches the server's data model, creates the tables and stores the token in the file (mode 0600). Run `kt sync` next to download the data.")

    @Option(name: .long, help: ArgumentHelp("The replica file to create.", valueName: "file")) var db: String
    @Option(name: .long, help: ArgumentHelp("Server base URL, e.g. https://kt.gemeente.nl", valueName: "url")) var server: String
    @Option(name: .long, help: "The device token from `ktd admin device add`.") var token: String
    @Option(name: .long, help: ArgumentHelp("Extra CA certificates (PEM) to trust for this server; remembered by the replica.", valueName: "file"))
    var caBundle: String?
    @Flag(help: "Print JSON instead of text.") var json = false

    /// Mistakes `kt` can see without asking the server (a usage error, exit 64).
    func validate() throws {
        if token.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw ValidationError("--token is empty: give the token `ktd admin device add` printed (it starts with kt_)")
        }
        if token.contains(where: { $0.isWhitespace }) {
            throw ValidationError("--token contains a space or line break: copy the token `ktd admin device add` printed exactly")
        }
        guard let url = URLComponents(string: server), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
              let host = url.host, !host.isEmpty else {
            throw ValidationError("--server '\(server)' is not a server address: give it with its scheme, e.g. https://kt.gemeente.nl "
                + "or http://127.0.0.1:8470")
        }
        let folder = (db as NSString).deletingLastPathComponent
        var isDirectory: ObjCBool = false
        if !folder.isEmpty, !FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) || !isDirectory.boolValue {
            throw ValidationError("the folder '\(folder)' for --db does not exist; create it first (mkdir -p '\(folder)')")
        }
        if FileManager.default.fileExists(atPath: db) {
            throw ValidationError("'\(db)' exists already; a replica is created once. Choose another file, or remove it if it is not needed.")
        }
    }

    func run() throws {
        let hello = try askHello(CurlTransport(baseURL: server, token: token, caBundlePath: caBundle))
        let replica = try Replica.create(path: db, dataModel: hello.schema, serverURL: server, token: token, caBundlePath: caBundle)
        if json {
            return try Terminal.printJSON(["db": db, "node": replica.node.description, "device": hello.device,
                                  "schemaVersion": String(hello.schema.version)])
        }
        if let user = hello.user {
            print("Device of \(user) (\(hello.role ?? "?"); scopes: \((hello.scopes ?? []).isEmpty ? "none yet" : (hello.scopes ?? []).joined(separator: " "))).")
        }
        print("Replica \(db) created (node \(replica.node), device \(hello.device), data model v\(hello.schema.version),",
              "\(hello.schema.tables.count) tables). Run `kt sync --db \(db)` to download.")
    }
}

struct Upgrade: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Migrate the replica in place to the server's newer data model.",
        discussion: """
            New tables and columns are added, cells received earlier for them are applied from the local
            stash (nothing is downloaded again), and local changes the server refused with upgrade_required
            are queued again. Run `kt sync` afterwards.
            """)
    @OptionGroup var options: ReplicaOptions
    @Option(name: .long, help: ArgumentHelp("Extra CA certificates (PEM) to trust (default: the one given to kt init).", valueName: "file")) var caBundle: String?

    func run() throws {
        let replica = try options.open()
        let hello = try askHello(CurlTransport(baseURL: try replica.serverURL, token: try replica.tokenForCommands,
                                               caBundlePath: try caBundle ?? replica.caBundlePath))
        if hello.schema.version == replica.dataModel.version {
            // Nothing to do is a success, not an error: scripts run `kt upgrade` after every server update.
            if options.json {
                return try Terminal.printJSON(["db": options.db, "schemaVersion": String(hello.schema.version), "upgraded": "false"])
            }
            print("\(options.db) already has the server's data model (v\(hello.schema.version)): nothing to upgrade.")
            return
        }
        let report = try replica.upgrade(to: hello.schema)
        if options.json { return try Terminal.printJSON(report) }
        print("Upgraded \(options.db) from data model v\(report.fromVersion) to v\(report.toVersion):",
              "\(report.tablesAdded.count) table(s) and \(report.columnsAdded.count) column(s) added,",
              "\(report.stashedCellsApplied) stashed cell(s) applied, \(report.changesRequeued) refused change(s) queued again.")
    }
}

/// The server's hello (who this device is, and the data model). Unreachable, or a refusal (the
/// server's code and message): exit 2, as for `kt sync`; not a usage error.
func askHello(_ transport: CurlTransport) throws -> HelloResponse {
    do {
        return try hello(transport)
    } catch let error as SyncError {
        Terminal.printError("Error: \(error)")
        throw ExitCode(2)
    } catch let error as TransportError {
        Terminal.printError("Error: \(error)")
        throw ExitCode(2)
    }
}

private func hello(_ transport: CurlTransport) throws -> HelloResponse {
    let exchange = try transport.send(method: "GET", path: "/v1/hello", query: [], body: nil)
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
