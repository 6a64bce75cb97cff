import ArgumentParser
import Foundation
import KeukentafelClient
import KeukentafelProtocol
import KeukentafelTerminal

// Making a replica (`kt init`) and bringing it to the server's data model (`kt upgrade`).
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a replica connected to a server.",
        discussion: """
            Fetches the server's data model, creates the tables and stores the token in the file (mode 0600). \
            Run `kt sync` next to download the data.

            The file is encrypted (AES-256-GCM, every page) with a random key, kept in FILE.key and locked \
            by your passphrase: kt asks for it twice on the terminal, or reads KT_PASSPHRASE or \
            --passphrase-fd. Every later kt command on the replica needs the same passphrase; change it \
            with `kt passphrase`. A forgotten passphrase cannot be recovered: make a new replica and sync \
            (what was not yet sent is lost). Use --plain only for tests or on a machine whose disk is \
            encrypted anyway.
            """)

    @Option(name: .long, help: ArgumentHelp("The replica file to create.", valueName: "file")) var db: String
    @Option(name: .long, help: ArgumentHelp("Server base URL, e.g. https://kt.gemeente.nl", valueName: "url")) var server: String
    @Option(name: .long, help: "The device token from `ktd admin device add`.") var token: String
    @Option(name: .long, help: ArgumentHelp("Extra CA certificates (PEM) to trust for this server; remembered by the replica.", valueName: "file"))
    var caBundle: String?
    @Flag(help: "Print JSON instead of text.") var json = false
    @Flag(help: "Encrypt the replica file with a passphrase (the default; say it to be explicit).") var encrypt = false
    @Flag(help: "Do not encrypt the replica file (tests, or a disk that is encrypted anyway).") var plain = false
    @Option(name: .long, help: ArgumentHelp("Read the new replica's passphrase from this open file descriptor (else KT_PASSPHRASE, else the terminal).",
                                            valueName: "fd"))
    var passphraseFd: Int32?

    /// Mistakes `kt` can see without asking the server (a usage error, exit 64).
    func validate() throws {
        try checkToken(token)
        try checkServer(server)
        if encrypt && plain { throw ValidationError("--encrypt and --plain contradict each other; give one") }
        let folder = (db as NSString).deletingLastPathComponent
        var isDirectory: ObjCBool = false
        if !folder.isEmpty, !FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) || !isDirectory.boolValue {
            throw ValidationError("the folder '\(folder)' for --db does not exist; create it first (mkdir -p '\(folder)')")
        }
        if FileManager.default.fileExists(atPath: db) {
            throw ValidationError("'\(db)' exists already; a replica is created once. Choose another file, remove it if it is not needed, "
                                  + "or give it a new token with `kt login`.")
        }
    }

    func run() throws {
        let encryption: ReplicaEncryption = plain
            ? .none : .passphrase(try Passphrase.read(for: db, fd: passphraseFd, prompt: "New passphrase for \(db): ", confirm: true))
        let replica = try serverStep {
            try Replica.connect(path: db, serverURL: server, token: token, caBundlePath: caBundle, encryption: encryption)
        }
        let identity = try replica.identity
        if json {
            return try Terminal.printJSON(["db": db, "node": replica.node.description, "device": identity?.device ?? "",
                                           "schemaVersion": String(replica.dataModel.version), "encrypted": String(replica.isEncrypted)])
        }
        if let identity, let user = identity.user {
            print("Device of \(user) (\(identity.role ?? "?"); scopes: \(identity.scopes.isEmpty ? "none yet" : identity.scopes.joined(separator: " "))).")
        }
        print("Replica \(db) created (node \(replica.node), device \(identity?.device ?? "?"), data model v\(replica.dataModel.version),",
              "\(replica.dataModel.tables.count) tables, \(replica.isEncrypted ? "encrypted; key in \(db).key" : "not encrypted")).",
              "Run `kt sync --db \(db)` to download.")
    }
}

struct Login: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Give an existing replica a new token or server address, keeping its unsent work.",
        discussion: """
            For a device whose token was revoked or replaced, a server that moved, or a laptop handed to a
            colleague. The token is checked with the server first; a refusal changes nothing. The outbox,
            the conflicts and the data stay. A token of another device than before makes the next
            `kt sync` download the feed again as that device (rows it may not see are dropped; its own
            unsent rows stay). The office revokes the old device first:
              ktd admin device revoke "laptop sanne"        (on the server)
              kt login --db laptop.sqlite --token kt_…       (on the laptop)
              kt sync --db laptop.sqlite
            """)
    @OptionGroup var options: ReplicaOptions
    @Option(name: .long, help: ArgumentHelp("The server base URL (default: the replica's).", valueName: "url")) var server: String?
    @Option(name: .long, help: "The new device token from `ktd admin device add`.") var token: String
    @Option(name: .long, help: ArgumentHelp("Extra CA certificates (PEM) to trust (default: the one given before).", valueName: "file"))
    var caBundle: String?

    func validate() throws {
        try checkToken(token)
        if let server { try checkServer(server) }
    }

    func run() throws {
        let replica = try options.open()
        let report: ReconnectReport
        do {
            report = try serverStep { try replica.reconnect(serverURL: server, token: token, caBundlePath: caBundle) }
        } catch let error as ReplicaError {
            Terminal.printError("Error: \(error)")
            throw ExitCode(2)
        }
        if options.json { return try Terminal.printJSON(report) }
        let who = report.identity.user.map { "device \(report.identity.device) of \($0)" } ?? "device \(report.identity.device)"
        print("\(options.db) now syncs with \(report.serverURL) as \(who)",
              "(scopes: \(report.identity.scopes.isEmpty ? "none yet" : report.identity.scopes.joined(separator: " "))).")
        print("\(report.changesKept) unsent change\(report.changesKept == 1 ? "" : "s") kept.",
              report.downloadsAgain ? "The next `kt sync` downloads the feed again for this device." : "The next `kt sync` goes on where the last stopped.")
        if let version = report.serverSchemaVersion {
            print("The server has data model v\(version): run `kt upgrade --db \(options.db)` next.")
        }
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
        let hello = try serverStep {
            try fetchHello(CurlTransport(baseURL: try replica.serverURL, token: try replica.tokenForCommands,
                                         caBundlePath: try caBundle ?? replica.caBundlePath))
        }
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

/// A step that asks the server. Unreachable, or a refusal (the server's code and message): exit 2,
/// as for `kt sync`; not a usage error.
func serverStep<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as SyncError {
        Terminal.printError("Error: \(error)")
        throw ExitCode(2)
    }
}

func checkToken(_ token: String) throws {
    if token.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
        throw ValidationError("--token is empty: give the token `ktd admin device add` printed (it starts with kt_)")
    }
    if token.contains(where: { $0.isWhitespace }) {
        throw ValidationError("--token contains a space or line break: copy the token `ktd admin device add` printed exactly")
    }
}

func checkServer(_ server: String) throws {
    guard let url = URLComponents(string: server), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
          let host = url.host, !host.isEmpty else {
        throw ValidationError("--server '\(server)' is not a server address: give it with its scheme, e.g. https://kt.gemeente.nl "
            + "or http://127.0.0.1:8470")
    }
}
