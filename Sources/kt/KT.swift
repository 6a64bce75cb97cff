import ArgumentParser
import Foundation
import KeukentafelClient
import KeukentafelProtocol
import KeukentafelTerminal

@main
struct KT: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kt",
        abstract: "Keukentafel on a device: a local replica that works offline and syncs with the office.",
        discussion: """
            First time on a device (the office gives you the server address and a token):
              kt init --db laptop.sqlite --server http://127.0.0.1:8470 --token kt_…
            Work offline with plain SQL; every write is captured and synced later:
              kt sql --db laptop.sqlite "UPDATE cases SET status = 'plan' WHERE id = '…'"
            Sync when there is a network, and see what happened:
              kt sync --db laptop.sqlite
              kt status --db laptop.sqlite
            """,
        version: "0.1.0",
        subcommands: [Init.self, SQL.self, Sync.self, Status.self, Conflicts.self, History.self, Upgrade.self, Due.self, Daemon.self])
}

struct ReplicaOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The replica file.", valueName: "file"))
    var db: String = ProcessInfo.processInfo.environment["KT_DB"] ?? "keukentafel.sqlite"

    @Flag(help: "Print JSON instead of text.") var json = false

    func open() throws -> Replica { try Replica(path: db) }
}

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

    func run() throws {
        let transport = CurlTransport(baseURL: server, token: token, caBundlePath: caBundle)
        let exchange = try transport.send(method: "GET", path: "/v1/hello", query: [], body: nil)
        guard exchange.status == 200 else {
            let reason = (try? JSONDecoder().decode(ErrorResponse.self, from: exchange.body)).map { "\($0.error.code.rawValue): \($0.error.message)" }
            throw ValidationError("the server refused: \(reason ?? "HTTP \(exchange.status)")")
        }
        let hello = try JSONDecoder().decode(HelloResponse.self, from: exchange.body)
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

struct SQL: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sql", abstract: "Run SQL on the replica; writes are captured and synced.",
        discussion: """
            Queries print their rows; writes print how many rows changed. Several statements may be
            separated by ';'. Values are checked against the data model at once:
              kt sql --db laptop.sqlite "INSERT INTO notes (id, case_id, body) VALUES ('…', '…', 'Visited at home')"
            """)

    @OptionGroup var options: ReplicaOptions
    @Argument(help: "The SQL to run.") var sql: String

    func run() throws {
        let replica = try options.open()
        let trimmed = sql.trimmingCharacters(in: .whitespacesAndNewlines)
        let isQuery = ["select", "with", "pragma", "explain", "values"].contains { trimmed.lowercased().hasPrefix($0) }
        do {
            if isQuery {
                let result = try replica.query(trimmed)
                if options.json {
                    return try Terminal.printJSON(result.rows.map { row in
                        Dictionary(uniqueKeysWithValues: zip(result.columns, row.map(JSONCell.init)))
                    })
                }
                Terminal.printTable(result.columns, result.rows.map { $0.map { Terminal.shorten($0.description, to: 60) } }, empty: "(no rows)")
            } else {
                try replica.execute(trimmed)
                if options.json { return try Terminal.printJSON(["ok": true]) }
                let waiting = try replica.status().pending
                print("OK; \(waiting) cell change\(waiting == 1 ? "" : "s") waiting to be sent (run `kt sync`)")
            }
        } catch {
            Terminal.printError("error: \(error)")
            throw ExitCode.failure
        }
    }
}

struct Sync: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Push local writes, then pull what changed on the server.",
        discussion: "Exits non-zero with the reason when the server cannot be reached or refuses; nothing local is lost then.")

    @OptionGroup var options: ReplicaOptions
    @Option(name: .long, help: ArgumentHelp("Extra CA certificates (PEM) to trust (default: the one given to kt init).", valueName: "file")) var caBundle: String?

    func run() throws {
        let replica = try options.open()
        let report: SyncReport
        do {
            let engine = try SyncEngine(replica: replica, caBundlePath: caBundle)
            if !options.json { engine.onPage = Progress.reporter() }
            report = try engine.sync()
            Progress.finish()
        } catch {
            Progress.finish()
            if options.json { try Terminal.printJSON(["error": "\(error)"]) } else { Terminal.printError("sync failed: \(error)") }
            throw ExitCode(2)
        }
        if options.json { return try Terminal.printJSON(report) }
        let p = report.pushed
        print("pushed \(p.total): \(p.applied) applied, \(p.superseded) superseded, \(p.conflicts) in conflict, \(p.rejected) rejected")
        print("pulled \(report.pulled.cellsReceived) cells in \(report.pages) page(s): \(report.pulled.cellsApplied) applied,",
              "\(report.pulled.rowsDeleted) rows deleted, \(report.pulled.conflicts) conflict records; cursor \(report.cursor)")
        if report.restamped > 0 { print("\(report.restamped) change(s) refused earlier for a wrong clock were re-stamped and sent") }
        if p.purged > 0 { print("\(p.purged) local row(s) removed: they were written about a person erased from the server meanwhile") }
        if report.resolutionsRefused > 0 {
            print("\(report.resolutionsRefused) conflict decision(s) refused by the server: see `kt status --db \(options.db)`")
        }
        if report.stillRejected > 0 { print("\(report.stillRejected) local change(s) refused by the server: see `kt status --db \(options.db)`") }
        if let newer = report.serverSchemaVersion, newer > replica.dataModel.version {
            print("the server runs data model v\(newer); this replica has v\(replica.dataModel.version): run `kt upgrade --db \(options.db)`")
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show outbox, last sync, cursor, refused changes and conflicts.")
    @OptionGroup var options: ReplicaOptions

    func run() throws {
        let status = try options.open().status()
        if options.json { return try Terminal.printJSON(status) }
        print("replica      \(status.path) (node \(status.node), data model v\(status.schemaVersion))")
        print("server       \(status.server)")
        print("last sync    \(status.lastSyncAt.map { Terminal.relativeTime($0) } ?? "never")")
        if let error = status.lastError { print("last error   \(error)") }
        print("cursor       \(status.cursor)")
        print("outbox       \(status.pending) waiting to be sent, \(status.rejected) refused by the server")
        print("conflicts    \(status.conflicts) known, \(status.lostWrites) of them lost by writes from this device")
        if let newer = status.serverSchemaVersion, newer > status.schemaVersion {
            print("data model   the server runs v\(newer), this replica v\(status.schemaVersion): run `kt upgrade --db \(options.db)`")
        }
        for refused in status.refusedResolutions {
            print("  " + Terminal.paint("•", .red) + " your decision on conflict \(refused.conflict) was refused: \(refused.message) [\(refused.code.rawValue)]")
        }
        for lost in status.lostChanges {
            let other = lost.winnerDeviceName ?? lost.winnerDevice ?? "another device"
            let what: String
            switch lost.rule {
            case "delete-wins": what = "your \(lost.table).\(lost.column) = \(Terminal.shorten(lost.loserValue.description)) was made on a row \(other) deleted"
            case "edit-wins": what = "your deletion of \(lost.table) \(lost.row.prefix(8))… lost to a later edit by \(other)"
            case "immutable": what = "your \(lost.table).\(lost.column) = \(Terminal.shorten(lost.loserValue.description)) came after it was fixed"
            case "duplicate": what = "your new \(lost.table) row duplicates one made by \(other)"
            default: what = "your \(lost.table).\(lost.column) = \(Terminal.shorten(lost.loserValue.description)) lost to \(Terminal.shorten(lost.winnerValue.description)) by \(other)"
            }
            print("  " + Terminal.paint("•", .red) + " \(what) (\(Terminal.age(ofISO: lost.recordedAt)); `kt conflicts show \(lost.id)`)")
        }
        // One line per row and reason: a refused new row is many cells with one cause.
        var groups: [(key: String, changes: [ReplicaStatus.RejectedChange])] = []
        for rejected in status.rejectedChanges {
            let parts = rejected.cell.split(separator: "/", maxSplits: 2).map(String.init)
            let key = (parts.count == 3 ? "\(parts[0])/\(parts[1].prefix(8))…" : rejected.cell) + "\u{0}" + rejected.code + "\u{0}" + rejected.message
            if let index = groups.firstIndex(where: { $0.key == key }) { groups[index].changes.append(rejected) } else { groups.append((key, [rejected])) }
        }
        for group in groups {
            let first = group.changes[0]
            let parts = first.cell.split(separator: "/", maxSplits: 2).map(String.init)
            let what = group.changes.count == 1 || parts.count < 3
                ? "\(first.cell) = \(Terminal.shorten(first.value))"
                : "\(parts[0])/\(parts[1].prefix(8))… (\(group.changes.compactMap { $0.cell.split(separator: "/", maxSplits: 2).last.map(String.init) }.joined(separator: ", ")))"
            print("  refused \(what) [\(first.code)]: \(first.message)")
        }
    }
}

struct Conflicts: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Conflicts the server recorded on rows this device sees: list, show, resolve.",
        subcommands: [List.self, Show.self, Resolve.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List conflicts, newest first.",
            discussion: """
                  kt conflicts list --db laptop.sqlite --unresolved --review
                  kt conflicts list --db laptop.sqlite --table cases --mine
                """)
        @OptionGroup var options: ReplicaOptions
        @Option(help: "Only this table.") var table: String?
        @Option(help: ArgumentHelp("Only this row (id or its first characters).", valueName: "id")) var row: String?
        @Option(help: ArgumentHelp("Only conflicts recorded on or after this date (YYYY-MM-DD).", valueName: "date")) var since: String?
        @Option(help: ArgumentHelp("Only conflicts in which this device (id or name) took part.", valueName: "device")) var device: String?
        @Option(help: ArgumentHelp("Only conflicts in which a device of this user took part.", valueName: "user")) var user: String?
        @Flag(help: "Only conflicts nobody resolved yet.") var unresolved = false
        @Flag(help: "Only the review queue (columns the data model flags for review).") var review = false
        @Flag(help: "Only conflicts in which a write of this device lost.") var mine = false
        @Flag(help: "Show values in full instead of shortened.") var full = false

        func run() throws {
            let replica = try options.open()
            let filter = ConflictFilter(table: table, row: row, since: since, device: device, user: user,
                                        unresolvedOnly: unresolved, reviewOnly: review)
            let conflicts = try replica.conflicts().filter { filter.matches($0) && (!mine || $0.loserVersion.node == replica.node) }
            if options.json { return try Terminal.printJSON(conflicts) }
            let width = full ? Int.max : 28
            Terminal.printTable(["ID", "CELL", "WINNER", "LOSER", "RULE", "MINE LOST", "STATE", "RECORDED"], conflicts.map {
                ["\($0.id)", "\($0.table)/\($0.row.prefix(8))…/\($0.column)", Terminal.shorten($0.winnerValue.description, to: width),
                 Terminal.shorten($0.loserValue.description, to: width), $0.rule + ($0.review ? " (review)" : ""),
                 $0.loserVersion.node == replica.node ? Terminal.paint("yes", .red) : "",
                 $0.resolvedAt != nil ? Terminal.paint("resolved", .green)
                    : ($0.resolution != nil ? Terminal.paint("resolved (not synced)", .yellow) : Terminal.paint("open", .yellow)),
                 Terminal.age(ofISO: $0.recordedAt)]
            }, empty: "No conflicts.")
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one conflict in full: both sides, who, which device, when, the base and the rule.")
        @OptionGroup var options: ReplicaOptions
        @Argument(help: "Conflict id.") var id: Int64

        func run() throws {
            guard let conflict = try options.open().conflicts().first(where: { $0.id == id }) else {
                throw ValidationError("no conflict \(id) in this replica (run `kt sync` to fetch new ones)")
            }
            if options.json { return try Terminal.printJSON(conflict) }
            print(Terminal.describe(conflict))
        }
    }

    struct Resolve: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Settle a conflict in one action; the change and the decision sync to every device.",
            discussion: """
                  kt conflicts resolve 12 --keep loser --db laptop.sqlite     # restore the value that lost
                  kt conflicts resolve 12 --keep winner --db laptop.sqlite    # agree with the outcome
                  kt conflicts resolve 12 --value gesloten --db laptop.sqlite # write another value
                Then run `kt sync`.
                """)
        @OptionGroup var options: ReplicaOptions
        @Argument(help: "Conflict id.") var id: Int64
        @Option(help: "winner or loser.") var keep: String?
        @Option(help: "A new value instead (text; numbers are stored as numbers when the column is numeric).") var value: String?
        @Option(help: "Why, for the record.") var note: String?

        func run() throws {
            let replica = try options.open()
            let choice: ConflictChoice
            switch (keep, value) {
            case ("winner"?, nil): choice = .keepWinner
            case ("loser"?, nil): choice = .restoreLoser
            case (nil, let text?):
                guard let conflict = try replica.conflicts().first(where: { $0.id == id }) else { throw ValidationError("no conflict \(id)") }
                choice = .value(try replica.dataModel.value(fromText: text, table: conflict.table, column: conflict.column))
            default: throw ValidationError("say either --keep winner, --keep loser or --value V")
            }
            do {
                try replica.resolve(conflict: id, choice, note: note)
            } catch {
                Terminal.printError("error: \(error)")
                throw ExitCode.failure
            }
            if options.json { return try Terminal.printJSON(["resolved": id]) }
            print("Conflict \(id) resolved on this device; run `kt sync --db \(options.db)` to send the decision.")
        }
    }
}

struct History: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Every value a record (or one cell) had: who, which device, when. Asks the server.",
        discussion: "  kt history cases c0000000-0000-4000-8000-000000000005 status --db laptop.sqlite")
    @OptionGroup var options: ReplicaOptions
    @Argument(help: "Table.") var table: String
    @Argument(help: "Row id.") var row: String
    @Argument(help: "Column (default: all).") var column: String?
    @Flag(help: "Show values in full instead of shortened.") var full = false
    @Option(name: .long, help: ArgumentHelp("Extra CA certificates (PEM) to trust (default: the one given to kt init).", valueName: "file")) var caBundle: String?

    func run() throws {
        let entries: [HistoryEntry]
        do {
            entries = try SyncEngine(replica: try options.open(), caBundlePath: caBundle).history(table: table, row: row, column: column)
        } catch {
            Terminal.printError("history failed: \(error)")
            throw ExitCode(2)
        }
        if options.json { return try Terminal.printJSON(entries) }
        Terminal.printHistory(entries, full: full)
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
        let transport = CurlTransport(baseURL: try replica.serverURL, token: try replica.tokenForCommands,
                                      caBundlePath: try caBundle ?? replica.caBundlePath)
        let exchange = try transport.send(method: "GET", path: "/v1/hello", query: [], body: nil)
        guard exchange.status == 200 else { throw ValidationError("the server refused: HTTP \(exchange.status)") }
        let hello = try JSONDecoder().decode(HelloResponse.self, from: exchange.body)
        let report = try replica.upgrade(to: hello.schema)
        if options.json { return try Terminal.printJSON(report) }
        print("Upgraded \(options.db) from data model v\(report.fromVersion) to v\(report.toVersion):",
              "\(report.tablesAdded.count) table(s) and \(report.columnsAdded.count) column(s) added,",
              "\(report.stashedCellsApplied) stashed cell(s) applied, \(report.changesRequeued) refused change(s) queued again.")
    }
}

struct Due: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List overdue and upcoming deadlines of the cases on this device, offline.",
        discussion: """
            Investigation: 6 weeks after the melding. Decision: 2 weeks after the application (Wmo),
            8 weeks for youth and participation. Also the next contact date agreed with the resident.
              kt due --db laptop.sqlite --within 14
              kt due --db laptop.sqlite --contact "Fatima Yilmaz" --json
            """)
    @OptionGroup var options: ReplicaOptions
    @Option(help: "Show deadlines due within this many days (overdue ones always).") var within = 14
    @Option(help: ArgumentHelp("Only cases of this contact person.", valueName: "name")) var contact: String?
    @Option(help: ArgumentHelp("Count from this date instead of today (YYYY-MM-DD).", valueName: "date")) var today: String?

    func run() throws {
        let day = today ?? CalendarDay.string(Int(Date().timeIntervalSince1970 / 86400))
        guard CalendarDay.number(day) != nil else { throw ValidationError("--today takes a date YYYY-MM-DD") }
        let items = try options.open().due(today: day, within: within, contactPerson: contact)
        if options.json { return try Terminal.printJSON(items) }
        Terminal.printTable(["DUE", "IN", "DEADLINE", "RESIDENT", "CONTACT", "CASE"], items.map {
            [$0.deadline.due, $0.deadline.daysLeft < 0 ? Terminal.paint("\(-$0.deadline.daysLeft)d OVERDUE", .red) : "\($0.deadline.daysLeft)d",
             $0.deadline.kind.rawValue, $0.resident, $0.contactPerson ?? "-", $0.caseID]
        }, empty: "Nothing overdue or due within \(within) days.")
    }
}

struct Daemon: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Keep the replica in sync continuously until stopped (SIGTERM or Ctrl-C).",
        discussion: """
            Pushes local writes within --poll seconds and long-polls the server, so a colleague's change
            arrives as soon as it is committed. While the server is unreachable it retries with growing,
            jittered pauses. Logs one line per event (JSON lines with --json).
              kt daemon --db office.sqlite
            """)
    @OptionGroup var options: ReplicaOptions
    @Option(help: "Seconds a long-poll waits for news; also the longest a local write waits to be pushed.") var poll = 1
    @Option(help: "The longest pause between retries while the server is unreachable, in seconds.") var maxBackoff: Double = 60
    @Option(name: .long, help: ArgumentHelp("Extra CA certificates (PEM) to trust (default: the one given to kt init).", valueName: "file")) var caBundle: String?

    func run() throws {
        let daemon = SyncDaemon(engine: try SyncEngine(replica: try options.open(), caBundlePath: caBundle), pollSeconds: poll)
        daemon.maximumBackoffSeconds = max(1, maxBackoff)
        for signalNumber in [SIGTERM, SIGINT] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { daemon.stop() }
            source.resume()
            DaemonSignals.sources.append(source)
        }
        let json = options.json
        print(json ? #"{"event":"started"}"# : "kt daemon: syncing \(options.db) (poll \(poll) s)")
        fflush(nil)
        daemon.run { event in
            let stamp = ISO8601DateFormatter().string(from: Date())
            if json {
                print(#"{"time":"\#(stamp)","event":"\#(event.description.replacingOccurrences(of: "\"", with: "'"))"}"#)
            } else {
                print("\(stamp) \(event)")
            }
            fflush(nil)
        }
    }
}

/// Keeps the signal sources alive for the life of the process.
enum DaemonSignals {
    nonisolated(unsafe) static var sources: [any DispatchSourceSignal] = []
}

/// Progress of a long pull: an updating line on a terminal, a line per 100,000 cells otherwise.
enum Progress {
    nonisolated(unsafe) static var drawn = false

    /// Progress of a long pull on standard error: an updating line on a terminal, a line per 100,000
    /// cells otherwise (logs).
    static func reporter() -> @Sendable (SyncReport) -> Void {
        let lines = Locked(ProgressLines(terminal: isatty(STDERR_FILENO) == 1))
        return { report in
            guard let line = lines.withLock({ $0.line(cells: report.pulled.cellsReceived, pages: report.pages, cursor: report.cursor) })
            else { return }
            FileHandle.standardError.write(Data(line.utf8))
            if line.hasPrefix("\r") { drawn = true }
        }
    }

    static func finish() {
        if drawn { FileHandle.standardError.write(Data("\n".utf8)) }
        drawn = false
    }

    final class Locked<Value>: @unchecked Sendable {
        private let lock = NSLock()
        private var value: Value
        init(_ value: Value) { self.value = value }
        func withLock<T>(_ body: (inout Value) -> T) -> T { lock.withLock { body(&value) } }
    }
}
