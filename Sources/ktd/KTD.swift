import ArgumentParser
import Foundation
import KeukentafelProtocol
import KeukentafelTerminal
import KeukentafelServer
import Logging

@main
struct KTD: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ktd",
        abstract: "The Keukentafel sync server: merges the changes of field laptops and the office, keeps every conflict.",
        discussion: """
            Start a server on an embedded SQLite store (created on first start):
              ktd serve --data /var/lib/keukentafel --listen 127.0.0.1:8470
            Register a device and print its token (shown once):
              ktd admin device add "laptop Fatima" --data /var/lib/keukentafel
            """,
        version: "0.1.0",
        subcommands: [Serve.self, Admin.self])
}

/// Options every command that opens the store shares.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Configuration file (key = value lines; see Tools/ktd.conf.example). Environment: KT_CONFIG. Flags and environment override it.",
        valueName: "file"))
    var config: String?

    @Option(name: .customLong("data"), help: ArgumentHelp(
        "Data directory of the store (created on first start). Environment: KT_DATA. Default: ./keukentafel-data", valueName: "dir"))
    var dataFlag: String?

    @Option(name: .customLong("postgres"), help: ArgumentHelp(
        "Keep the store in PostgreSQL instead of an SQLite file in --data: postgres://USER@HOST:PORT/DATABASE[?sslmode=require] "
            + "(password from PGPASSWORD). Several ktd processes may serve one database. Environment: KT_POSTGRES_URL.",
        valueName: "url"))
    var postgresFlag: String?

    @Option(name: .customLong("schema"), help: ArgumentHelp(
        "Data model (YAML). Environment: KT_SCHEMA. Default: the copy in the data directory, else Schemas/datamodel.yaml found from the working directory or the executable.",
        valueName: "file"))
    var schemaFlag: String?

    /// The configuration file, read and checked (empty without one).
    func configFile() throws -> ConfigFile {
        try ConfigFile.load(config ?? ProcessInfo.processInfo.environment["KT_CONFIG"])
    }

    var data: String { ((try? configFile()) ?? ConfigFile()).value("data", flag: dataFlag) ?? "./keukentafel-data" }
    var schema: String? { ((try? configFile()) ?? ConfigFile()).value("schema", flag: schemaFlag) }
    var postgres: String? { ((try? configFile()) ?? ConfigFile()).value("postgres", flag: postgresFlag) }

    /// Where the store lives, for messages: the data directory or the PostgreSQL URL (without password).
    var storeDescription: String {
        postgres.flatMap { try? PostgresLocation(url: $0).description } ?? data
    }

    /// Loads the data model and keeps a copy in the data directory, so admin commands and later
    /// starts use the model the store was created with.
    func loadDataModel() throws -> DataModel {
        let copy = (data as NSString).appendingPathComponent(DataModelFile.fileName)
        let candidates = [schema, copy] + Self.searchPaths()
        guard let path = candidates.compactMap({ $0 }).first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw ValidationError("no data model found; pass --schema FILE (the repository has Schemas/datamodel.yaml)")
        }
        let model: DataModel
        do {
            model = try DataModelFile.load(path: path)
        } catch {
            throw ValidationError("\(error)")
        }
        if path != copy, FileManager.default.fileExists(atPath: copy), let stored = try? DataModelFile.load(path: copy), stored != model {
            // The store was made with another model: only a compatible newer one may replace it.
            let problems = model.evolutionProblems(from: stored)
            guard problems.isEmpty else {
                throw ValidationError("\(path) cannot replace the data model this store uses (v\(stored.version)):\n  "
                                      + problems.joined(separator: "\n  "))
            }
        }
        if path != copy {
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
            try Data(contentsOf: URL(fileURLWithPath: path)).write(to: URL(fileURLWithPath: copy), options: .atomic)
        }
        return model
    }

    static func searchPaths() -> [String] {
        var paths = ["Schemas/datamodel.yaml"]
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            paths.append(directory.appendingPathComponent("Schemas/datamodel.yaml").path)
            directory = directory.deletingLastPathComponent()
        }
        return paths
    }

    func openStore(maxClockSkewSeconds: Int = 300) throws -> ServerStore {
        _ = try configFile()  // a broken configuration file is an error, not a silent default
        let model = try loadDataModel()
        let skew = Int64(maxClockSkewSeconds) * 1000
        if let postgres {
            let location: PostgresLocation
            do { location = try PostgresLocation(url: postgres) } catch { throw ValidationError("--postgres: \(error)") }
            return try ServerStore(postgres: location, dataModel: model, maxClockSkewMilliseconds: skew)
        }
        return try ServerStore(directory: data, dataModel: model, maxClockSkewMilliseconds: skew)
    }
}

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
        let serverStore = try store.openStore(maxClockSkewSeconds: maxClockSkew)
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
        try await app.runService()
    }
}

struct Admin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Administer users, scopes and devices, inspect conflicts, audit and erase, in the server store.",
        subcommands: [UserCommand.self, ScopeCommand.self, DeviceCommand.self, ConflictsCommand.self, HistoryCommand.self,
                      AuditCommand.self, EraseCommand.self, Demo.self, Backup.self, Restore.self])
}

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load demo data: the fictional people of DOMAIN.md, plus a synthetic population of any size.",
        discussion: """
            The demo people have fixed ids (Mevrouw De Vries' case is \(DemoData.deVriesCase); the README
            walkthrough edits it) and loading them twice changes nothing. A synthetic population is
            deterministic for a seed:
              ktd admin demo --data /tmp/kt --cases 100000 --municipalities 4 --teams 8 --seed 7
            """)
    @OptionGroup var store: StoreOptions
    @Option(help: "Synthetic cases to add (each with a household, residents, visits, notes, and often carers and provisions).")
    var cases = 0
    @Option(help: "Municipalities of the synthetic population.") var municipalities = 4
    @Option(help: "Teams of the synthetic population.") var teams = 8
    @Option(help: "Seed of the synthetic population.") var seed: UInt64 = 1
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let serverStore = try store.openStore()
        let response = try serverStore.demo.load()
        try serverStore.demo.addUsers(actor: adminActor())
        let applied = response.results.filter { $0.status == .applied }.count
        var synthetic = 0, rejected = 0
        let start = Date()
        if cases > 0 {
            let population = SyntheticPopulation(municipalities: municipalities, teams: teams, cases: cases, seed: seed)
            synthetic = try population.generate(node: serverStore.node, milliseconds: UInt64(Date().timeIntervalSince1970 * 1000)) { batch in
                rejected += try serverStore.push(batch, device: "demo").results.filter { $0.status == .rejected }.count
            }
        }
        let seconds = Date().timeIntervalSince(start)
        if json {
            return try Terminal.printJSON(["demoCells": response.results.count, "demoNew": applied, "syntheticCases": cases,
                                           "syntheticCells": synthetic, "rejected": rejected, "milliseconds": Int(seconds * 1000)])
        }
        print("Demo people: \(response.results.count) cells offered, \(applied) new.")
        if cases > 0 {
            print("Synthetic population: \(cases) cases, \(synthetic) cells in \(String(format: "%.1f", seconds)) s"
                  + " (\(Int(Double(synthetic) / max(seconds, 0.001))) cells/s), \(rejected) rejected.")
        }
    }
}

struct ConflictsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conflicts", abstract: "Inspect and resolve conflict records in the server store.",
        subcommands: [List.self, Show.self, Resolve.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List conflicts, newest first.",
            discussion: """
                The same filters as `kt conflicts list` on a device, over every conflict in the store:
                  ktd admin conflicts list --review --unresolved          # the review queue
                  ktd admin conflicts list --user fatima --since 2026-11-01
                """)
        @OptionGroup var store: StoreOptions
        @Option(help: "Only this table.") var table: String?
        @Option(help: ArgumentHelp("Only this row (id or its first characters).", valueName: "id")) var row: String?
        @Option(help: ArgumentHelp("Only conflicts recorded on or after this date (YYYY-MM-DD).", valueName: "date")) var since: String?
        @Option(help: ArgumentHelp("Only conflicts in which this device (id or name) took part.", valueName: "device")) var device: String?
        @Option(help: ArgumentHelp("Only conflicts in which a device of this user took part.", valueName: "user")) var user: String?
        @Flag(help: "Only conflicts nobody resolved yet.") var unresolved = false
        @Flag(help: "Only the review queue (columns the data model flags for review).") var review = false
        @Option(help: "At most this many (newest first).") var limit = 1000
        @Flag(help: "Show values in full instead of shortened.") var full = false
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let filter = ConflictFilter(table: table, row: row, since: since, device: device, user: user,
                                        unresolvedOnly: unresolved, reviewOnly: review)
            let conflicts = Array(try store.openStore().conflicts.list(limit: 1_000_000).filter(filter.matches).prefix(limit))
            if json { return try Terminal.printJSON(conflicts) }
            let width = full ? Int.max : 28
            Terminal.printTable(["ID", "CELL", "WINNER", "LOSER", "WHO (WON / LOST)", "RULE", "STATE", "RECORDED"], conflicts.map {
                ["\($0.id)", "\($0.table)/\($0.row.prefix(8))…/\($0.column)", Terminal.shorten($0.winnerValue.description, to: width),
                 Terminal.shorten($0.loserValue.description, to: width),
                 "\($0.winnerUser ?? $0.winnerDeviceName ?? "office") / \($0.loserUser ?? $0.loserDeviceName ?? "office")",
                 $0.rule + ($0.review ? " (review)" : ""),
                 $0.resolvedAt != nil ? Terminal.paint("resolved", .green) : Terminal.paint("open", .yellow), Terminal.age(ofISO: $0.recordedAt)]
            }, empty: "No conflicts.")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one conflict in full.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Conflict id.") var id: Int64
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            guard let conflict = try store.openStore().conflicts.find(id: id) else { throw ValidationError("no conflict with id \(id)") }
            if json { return try Terminal.printJSON(conflict) }
            print(Terminal.describe(conflict))
        }
    }

    struct Resolve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Resolve a conflict from the office: the chosen value is a new write that syncs to every device.",
            discussion: """
                  ktd admin conflicts resolve 12 --keep loser --by "Anne de Wit" --data /var/lib/keukentafel
                  ktd admin conflicts resolve 12 --value gesloten --by "Anne de Wit" --note "closed after phone call"
                """)
        @OptionGroup var store: StoreOptions
        @Argument(help: "Conflict id.") var id: Int64
        @Option(help: "winner or loser.") var keep: String?
        @Option(help: "A new value instead (text; a number for numeric columns).") var value: String?
        @Option(help: "Who decides (recorded with the resolution).") var by: String
        @Option(help: "Why, for the record.") var note: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let serverStore = try store.openStore()
            let choice: Conflicts.Choice
            switch (keep, value) {
            case ("winner"?, nil): choice = .keepWinner
            case ("loser"?, nil): choice = .restoreLoser
            case (nil, let text?):
                guard let conflict = try serverStore.conflicts.find(id: id) else { throw ValidationError("no conflict with id \(id)") }
                choice = .value(try serverStore.dataModel.value(fromText: text, table: conflict.table, column: conflict.column))
            default: throw ValidationError("say either --keep winner, --keep loser or --value V")
            }
            _ = try serverStore.conflicts.resolve(id: id, choice, by: by, note: note)
            if json { return try Terminal.printJSON(try serverStore.conflicts.find(id: id)) }
            print("Conflict \(id) resolved by \(by); devices receive it on their next sync.")
        }
    }
}

struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Take a consistent online backup of the store while the server runs.",
        discussion: """
            Uses SQLite's online backup: the server keeps serving. Shows a progress bar on a terminal and
            a line per 10 % otherwise. Check a backup with `sqlite3 FILE 'PRAGMA integrity_check'`.
              ktd admin backup /var/backups/keukentafel-$(date +%F).sqlite --data /var/lib/keukentafel
            """)
    @OptionGroup var store: StoreOptions
    @Argument(help: "The backup file to write (replaced if it exists).") var file: String
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let serverStore = try store.openStore()
        let start = Date()
        var lastDecile = -1
        let terminal = Terminal.colours
        try serverStore.backups.backup(to: file) { done, total in
            guard total > 0, !json else { return }
            if terminal {
                let width = 40, filled = width * done / total
                FileHandle.standardError.write(Data("\r[\(String(repeating: "#", count: filled))\(String(repeating: " ", count: width - filled))] \(100 * done / total)%".utf8))
            } else if 10 * done / total > lastDecile {
                lastDecile = 10 * done / total
                print("backup: \(100 * done / total)% (\(done) of \(total) pages)")
            }
        }
        if terminal && !json { FileHandle.standardError.write(Data("\n".utf8)) }
        let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
        try serverStore.audit.record(actor: adminActor(), action: "backup", subject: file, detail: "\(size) bytes")
        if json { return try Terminal.printJSON(["file": file, "bytes": String(size), "milliseconds": String(Int(Date().timeIntervalSince(start) * 1000))]) }
        print("Backup written to \(file) (\(size / 1024) KiB) in \(String(format: "%.1f", Date().timeIntervalSince(start))) s.")
    }
}

struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Put the store back to a backup, while the server runs; devices recover by themselves.",
        discussion: """
            Copies the backup into the store with SQLite's online backup (the server keeps running and
            sees the restored state from its next request) and gives the feed a new epoch. Every device
            then starts its feed over on its next sync, keeps its unsent writes, and sends again its own
            writes that the backup lacks — so what devices had delivered after the backup comes back.
            Rows erased after the backup are erased again. Writes made only on the server after the
            backup (ktd admin demo, office resolutions) are not recovered.
              ktd admin restore /var/backups/keukentafel-2026-11-22.sqlite --data /var/lib/keukentafel --yes
            """)
    @OptionGroup var store: StoreOptions
    @Argument(help: "A backup written by `ktd admin backup`.") var file: String
    @Flag(help: "Confirm: the store's current state is replaced.") var yes = false
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        guard yes else {
            throw ValidationError("this replaces the store in \(store.data) by \(file); run again with --yes to go ahead")
        }
        let restored = try store.openStore().backups.restore(from: file, actor: adminActor())
        if json {
            return try Terminal.printJSON(["file": file, "sequence": String(restored.sequence), "epoch": restored.epoch,
                                           "erasedAgain": String(restored.erasedAgain)])
        }
        print("Store restored from \(file) (feed at sequence \(restored.sequence), new epoch \(restored.epoch)).")
        if restored.erasedAgain > 0 { print("\(restored.erasedAgain) rows erased since the backup were erased again.") }
        print("Devices recover on their next sync: they start over and send their own newer writes again.")
    }
}

struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history", abstract: "Every value a record (or one cell) had in the server store: who, which device, when.")
    @OptionGroup var store: StoreOptions
    @Argument(help: "Table.") var table: String
    @Argument(help: "Row id.") var row: String
    @Argument(help: "Column (default: all).") var column: String?
    @Flag(help: "Show values in full.") var full = false
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let entries = try store.openStore().history(table: table, row: row, column: column)
        if json { return try Terminal.printJSON(entries) }
        Terminal.printHistory(entries, full: full)
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
