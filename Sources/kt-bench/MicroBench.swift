import ArgumentParser
import Foundation
import Hummingbird
import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelSQLite
import Logging
import ServiceLifecycle

/// The micro-benchmark on a model of its own: one table of 10 columns, no scopes, no references.
/// It isolates the sync machinery; it does not stand for the product (`kt-bench real` does).
struct MicroBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "micro",
        abstract: "Micro-benchmark on a 10-column model of its own (not the real data model): the sync machinery alone.",
        discussion: """
            A micro-benchmark, labelled so: its model has one table of 10 columns, no scopes, no references,
            no enums, so its figures do not describe the real data model (`kt-bench real` measures that).
            Fills a server store with synthetic cases (10 cells each), then measures over loopback:
            server ingest, bootstrap of an empty replica, and an incremental sync. Raw SQLite inserts of
            the same cells and rows are timed in the same run; ratios are Keukentafel / raw.
            Use a release build: Tools/bench micro.
            """)

    @Option(help: "Cases on the server (10 cells each).") var cases = 100_000
    @Option(help: "Cells per pulled page.") var pageSize = 20_000
    @Option(help: "Changes per push batch during ingest.") var batch = 10_000
    @Option(help: "Cells changed for the incremental sync.") var incremental = 1_000
    @Option(help: "Concurrent clients for the concurrent ingest.") var clients = 50
    @Option(help: "Rows (10 cells each) each concurrent client pushes.") var rowsPerClient = 2_000
    @Option(help: "Writes timed from device A to online device B.") var visibilitySamples = 50
    @Option(help: "Afterwards, grow the store to this many cases and time the same incremental pull again (0: skip).")
    var growTo = 0
    @Option(help: "Directory for the stores (default: a new temporary one).") var directory: String?
    @Option(help: ArgumentHelp("Run the server on this PostgreSQL database (empty; e.g. from `createdb`) instead of SQLite; "
                               + "throughputs are then also compared with PostgreSQL's COPY of the same cells (needs psql).", valueName: "url"))
    var postgres: String?
    @Option(help: ArgumentHelp("The kt command for the bootstrap measured in a process of its own, whose peak memory is the "
                               + "client's (default: kt next to kt-bench; skipped if there is none).", valueName: "path"))
    var kt: String?
    @Flag(help: "Print only JSON.") var json = false
    @Flag(help: "Measure only raw SQLite and the server ingest through the store's push path (for profiling it).")
    var ingestOnly = false
    @Flag(help: "Also time the stages of a bootstrap separately (server read, JSON encode/decode, apply).") var breakdown = false

    func run() async throws {
        let work = directory ?? NSTemporaryDirectory() + "kt-bench-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { if directory == nil { try? FileManager.default.removeItem(atPath: work) } }
        let model = Self.benchModel
        let cells = cases * 10
        var results: [Measurement] = []
        var memory: [MemoryFigure] = []

        // Raw SQLite baselines, same machine, same run.
        let rawCells = try timed { try RawSQLite.insertCells(path: work + "/raw-cells.sqlite", cases: cases) }
        results.append(Measurement(name: "raw SQLite: insert cells (tbl,row,col,value)", count: cells, unit: "cells", seconds: rawCells))
        let rawRows = try timed { try RawSQLite.insertRows(path: work + "/raw-rows.sqlite", cases: cases) }
        results.append(Measurement(name: "raw SQLite: insert rows of 10 columns", count: cells, unit: "cells", seconds: rawRows))

        // Server ingest through the store's push path (one device, batches).
        let store: ServerStore
        var baseline = rawCells
        if let postgres {
            store = try ServerStore(postgres: try PostgresLocation(url: postgres), dataModel: model)
            guard try store.inspection.counts()["cells"] == 0 else { throw ValidationError("--postgres needs an empty database (createdb a new one)") }
            let rawCopy = try RawPostgres.copyCells(url: postgres, directory: work, cases: cases)
            results.append(Measurement(name: "raw PostgreSQL: COPY cells (tbl,row,col,value) with primary key", count: cells, unit: "cells",
                                       seconds: rawCopy))
            baseline = rawCopy
        } else {
            store = try ServerStore(directory: work + "/server", dataModel: model)
        }
        let node = NodeID.random()
        Memory.resetPeak()  // from here to the end of ingest this process is the server's store and nothing else
        var ingestSeconds = 0.0
        var clock = HybridLogicalClock()
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        var pending: [Change] = []
        pending.reserveCapacity(batch)
        var counter = 0
        for i in 0..<cases {
            let row = Synthetic.rowID(i)
            for (column, value) in Synthetic.caseCells(i) {
                counter += 1
                pending.append(Change(id: "\(node)-" + String(format: "%012d", counter), table: "cases", row: row, column: column, value: value,
                                      version: CellVersion(hlc: clock.tick(wallMilliseconds: now), node: node), base: nil))
                if pending.count == batch {
                    let changes = pending
                    ingestSeconds += try timed { _ = try store.push(changes, device: "bench") }
                    pending.removeAll(keepingCapacity: true)
                }
            }
        }
        if !pending.isEmpty {
            let changes = pending
            ingestSeconds += try timed { _ = try store.push(changes, device: "bench") }
        }
        results.append(Measurement(name: "server ingest (store push path, \(batch)/batch)", count: cells, unit: "cells", seconds: ingestSeconds,
                                   baseline: baseline))
        memory.append(MemoryFigure(name: "server, ingest of \(cells) cells (the store alone in this process)", kilobytes: Memory.peakKilobytes()))
        if ingestOnly {
            return try printSummary(Summary(cases: cases, cells: cells, pageSize: pageSize, results: results, memory: memory,
                                      peakResidentMegabytes: Double(Memory.peakKilobytes()) / 1024, residentBeforeBootstrapMegabytes: 0))
        }

        // A real server on loopback.
        let server = try await LoopbackServer.start(store)
        let url = server.url

        _ = try store.accounts.addUser(name: "bench", role: .backOffice, actor: "kt-bench")
        _ = try store.accounts.addScope(Access.everyScope, to: "bench", actor: "kt-bench")
        let token = try store.accounts.addDevice(name: "bench laptop", user: "bench").token
        let replica = try Replica.create(path: work + "/replica.sqlite", dataModel: model, serverURL: url, token: token)
        let engine = try SyncEngine(replica: replica)
        engine.pageSize = pageSize
        let memoryBefore = Memory.peakKilobytes()
        let (bootstrap, report) = try await onThread { try timedResult { try engine.sync() } }
        results.append(Measurement(name: "bootstrap: empty replica pulls everything over loopback", count: report.pulled.cellsApplied,
                                   unit: "cells", seconds: bootstrap, baseline: baseline))

        // Client and server memory apart: the real `kt` bootstraps a replica in a process of its own
        // while this process only serves. The child's peak is the client's; this one's, the server's.
        if let ktCommand = kt ?? ChildProcess.besideThisExecutable("kt") {
            let cliToken = try store.accounts.addDevice(name: "bench kt command", user: "bench").token
            let cliReplica = work + "/kt-command.sqlite"
            _ = try ChildProcess.run(ktCommand, ["init", "--db", cliReplica, "--server", url, "--token", cliToken, "--json", "--plain"])
            Memory.resetPeak()
            let (seconds, clientPeak) = try await onThread { try timedResult { try ChildProcess.run(ktCommand, ["sync", "--db", cliReplica, "--json"]) } }
            results.append(Measurement(name: "bootstrap by `kt sync` in a process of its own (pages of \(SyncEngine.defaultPageSize))",
                                       count: cells, unit: "cells", seconds: seconds, baseline: baseline))
            memory.append(MemoryFigure(name: "client, `kt sync` bootstrapping \(cells) cells (its own process)", kilobytes: clientPeak))
            memory.append(MemoryFigure(name: "server, serving that bootstrap (this process)", kilobytes: Memory.peakKilobytes()))
        } else {
            memory.append(MemoryFigure(name: "client and server apart: skipped, no kt command beside kt-bench (see --kt)", kilobytes: 0))
        }

        // Incremental: another device (bootstrapped too) changes `incremental` cells; the replica pulls them.
        let officeToken = try store.accounts.addDevice(name: "bench office", user: "bench").token
        let office = try Replica.create(path: work + "/office.sqlite", dataModel: model, serverURL: url, token: officeToken)
        let officeEngine = try SyncEngine(replica: office)
        officeEngine.pageSize = pageSize
        _ = try await onThread { try officeEngine.sync() }
        try office.transaction {
            for i in 0..<incremental {
                try office.execute("UPDATE cases SET status = 'gesloten' WHERE id = ?", [.text(Synthetic.rowID(i * 97 % cases))])
            }
        }
        let changedCells = try office.outbox().count
        let push = try await onThread { try timed { _ = try officeEngine.push() } }
        results.append(Measurement(name: "incremental: push \(changedCells) changed cells from a second device", count: changedCells,
                                   unit: "cells", seconds: push))
        let (pull, incrementalReport) = try await onThread { try timedResult { try engine.sync() } }
        results.append(Measurement(name: "incremental: pull them into the bootstrapped replica", count: incrementalReport.pulled.cellsApplied,
                                   unit: "cells", seconds: pull))

        // Visibility: a write on A, pushed at once, until online B (long-polling) has applied it.
        let latencies = try await onThread {
            try Visibility.measure(writer: officeEngine, reader: engine, samples: visibilitySamples, row: Synthetic.rowID(0))
        }
        results.append(Measurement(name: "visibility A → online B, p50 (long-poll)", count: 1, unit: "write",
                                   seconds: latencies.sorted()[latencies.count / 2]))
        results.append(Measurement(name: "visibility A → online B, p95", count: 1, unit: "write",
                                   seconds: latencies.sorted()[min(latencies.count - 1, latencies.count * 95 / 100)]))

        // New cases written on a device: its outbox holds their cells, ready to push.
        func deviceWithNewCases(_ name: String, first: Int, count: Int) throws -> Replica {
            let (_, token) = try store.accounts.addDevice(name: name, user: "bench")
            let file = name.replacingOccurrences(of: " ", with: "-")
            let replica = try Replica.create(path: work + "/\(file).sqlite", dataModel: model, serverURL: url, token: token)
            try replica.transaction {
                for i in first..<first + count {
                    let cells = Synthetic.caseCells(i)
                    try replica.execute("INSERT INTO cases (id, \(cells.map(\.0).joined(separator: ", "))) VALUES (?\(String(repeating: ", ?", count: cells.count)))",
                                        [.text(Synthetic.rowID(i))] + cells.map(\.1))
                }
            }
            return replica
        }

        // Ingest over HTTP from one device: the whole path (outbox, JSON, HTTP, the store, the answer
        // written back to the outbox), one batch after the other.
        let single = try SyncEngine(replica: try deviceWithNewCases("bench single client", first: 30_000_000, count: clients * rowsPerClient))
        single.pushBatchSize = batch
        let singleCells = try single.replica.outboxCounts().pending
        let singleSeconds = try await onThread { try timed { _ = try single.push() } }
        guard try single.replica.outboxCounts().pending == 0 else { throw ValidationError("the single client's ingest left changes unsent") }
        results.append(Measurement(name: "server ingest, one client pushing over HTTP (\(batch)/batch)", count: singleCells, unit: "cells",
                                   seconds: singleSeconds, baseline: baseline * Double(singleCells) / Double(cells)))

        // Concurrent ingest: many devices push at once through HTTP.
        var concurrentEngines: [SyncEngine] = []
        for c in 0..<clients {
            let replica = try deviceWithNewCases("bench client \(c)", first: 20_000_000 + c * rowsPerClient, count: rowsPerClient)
            let concurrentEngine = try SyncEngine(replica: replica)
            concurrentEngine.pushBatchSize = batch
            concurrentEngines.append(concurrentEngine)
        }
        let engines = concurrentEngines
        let concurrentCells = try engines.reduce(0) { $0 + (try $1.replica.outboxCounts().pending) }
        let concurrent = try await onThread {
            timed {
                // A thread per client: all of them have a push in flight at once.
                let group = DispatchGroup()
                for engine in engines {
                    group.enter()
                    Thread { _ = try? engine.push(); group.leave() }.start()
                }
                group.wait()
            }
        }
        let stillPending = try engines.reduce(0) { $0 + (try $1.replica.outboxCounts().pending) }
        guard stillPending == 0 else { throw ValidationError("concurrent ingest left \(stillPending) changes unsent") }
        results.append(Measurement(name: "server ingest, \(clients) clients pushing at once over HTTP", count: concurrentCells, unit: "cells",
                                   seconds: concurrent, baseline: baseline * Double(concurrentCells) / Double(cells)))

        if growTo > cases {
            // Incremental pull cost as the store grows: it must follow the changes, not the store's size.
            // First the replica catches up (untimed) with what the concurrent clients pushed.
            _ = try await onThread { try engine.sync() }
            // Five rounds at each size, medians: one round of about 0.1 s is within this VM's noise. The
            // store's read of the same range is timed alone too: that part must not grow with the store.
            func incrementalPull(_ label: String) async throws {
                var totals: [Double] = [], storeReads: [Double] = []
                var pulled = 0
                for round in 0..<5 {
                    try office.transaction {
                        for i in 0..<incremental {
                            try office.execute("UPDATE cases SET contact_person = ? WHERE id = ?",
                                               [.text("\(label) \(round) \(i)"), .text(Synthetic.rowID((i + round * incremental) * 89 % cases))])
                        }
                    }
                    _ = try await onThread { try officeEngine.push() }
                    let since = try replica.cursor
                    let (seconds, report) = try await onThread { try timedResult { try engine.sync() } }
                    totals.append(seconds)
                    pulled = report.pulled.cellsApplied
                    storeReads.append(try timed {
                        var cursor = since
                        var floor = since
                        while true {
                            let page = try store.pull(since: cursor, floor: floor, limit: pageSize)
                            cursor = page.cursor
                            floor = page.floor ?? cursor
                            if !page.more { break }
                        }
                    })
                }
                results.append(Measurement(name: "incremental pull of \(incremental) cells, store at \(label) cases (median of 5)", count: pulled,
                                           unit: "cells", seconds: totals.sorted()[2]))
                results.append(Measurement(name: "  of which the store reads those cells (median of 5)", count: pulled,
                                           unit: "cells", seconds: storeReads.sorted()[2]))
            }
            try await incrementalPull("\(cases)")
            var grown = 0
            var growBatch: [Change] = []
            for i in (cases + 30_000_000)..<(growTo + 30_000_000) {
                for (column, value) in Synthetic.caseCells(i) {
                    counter += 1
                    growBatch.append(Change(id: "\(node)-" + String(format: "%012d", counter), table: "cases", row: Synthetic.rowID(i), column: column,
                                            value: value, version: CellVersion(hlc: clock.tick(wallMilliseconds: now), node: node), base: nil))
                }
                if growBatch.count >= batch {
                    _ = try store.push(growBatch, device: "bench")
                    grown += growBatch.count
                    growBatch.removeAll(keepingCapacity: true)
                }
            }
            if !growBatch.isEmpty { _ = try store.push(growBatch, device: "bench") }
            // The replica follows the growth (not timed), then the same incremental pull is timed again.
            _ = try await onThread { try engine.sync() }
            try await incrementalPull("\(growTo)")
        }

        if breakdown {
            // Where bootstrap time goes, stage by stage, without HTTP.
            var pages: [PullResponse] = []
            let read = try timed {
                var cursor: Int64 = 0
                while true {
                    let page = try store.pull(since: cursor, limit: pageSize)
                    pages.append(page)
                    cursor = page.cursor
                    if !page.more { break }
                }
            }
            results.append(Measurement(name: "  breakdown: server reads all pages", count: cells, unit: "cells", seconds: read))
            var encoded: [Data] = []
            let encode = try timed { encoded = try pages.map { Data(try FeedCoding.encode($0)) } }
            results.append(Measurement(name: "  breakdown: encode pages to JSON (\(encoded.reduce(0) { $0 + $1.count } / 1_000_000) MB)",
                                       count: cells, unit: "cells", seconds: encode))
            var decoded: [PullResponse] = []
            let decode = try timed { decoded = try encoded.map { try FeedCoding.decodePull($0) } }
            results.append(Measurement(name: "  breakdown: decode pages from JSON", count: cells, unit: "cells", seconds: decode))
            let fresh = try Replica.create(path: work + "/fresh.sqlite", dataModel: model, serverURL: url, token: token)
            let apply = try timed { for page in decoded { _ = try fresh.applyForBenchmark(page) } }
            results.append(Measurement(name: "  breakdown: apply pages to an empty replica", count: cells, unit: "cells", seconds: apply))
        }

        let peak = Memory.peakKilobytes()
        await server.stop()

        try printSummary(Summary(cases: cases, cells: cells, pageSize: pageSize, results: results, memory: memory,
                           peakResidentMegabytes: Double(peak) / 1024, residentBeforeBootstrapMegabytes: Double(memoryBefore) / 1024))
    }

    func printSummary(_ summary: Summary) throws {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(summary), as: UTF8.self))
        } else {
            summary.printTable()
        }
    }

    static let benchModel = DataModel(version: 1, tables: [
        .init(name: "cases", columns: [
            .init(name: "resident_id", type: .text, maxLength: 36), .init(name: "team", type: .text, maxLength: 80),
            .init(name: "domain", type: .text, maxLength: 20), .init(name: "question", type: .text, maxLength: 4000),
            .init(name: "status", type: .text, maxLength: 20), .init(name: "contact_person", type: .text, maxLength: 120),
            .init(name: "melding_date", type: .date), .init(name: "application_date", type: .date),
            .init(name: "safety_risk", type: .boolean), .init(name: "next_contact_due", type: .date),
        ]),
    ])
}

/// Synthetic case cells, the same for every consumer in a run.
enum Synthetic {
    static func rowID(_ i: Int) -> String {
        let hex = String(i, radix: 16)
        return "c0000000-0000-4000-8000-" + String(repeating: "0", count: 12 - hex.count) + hex
    }

    static let teams = ["castricum-noord", "castricum-zuid", "heiloo", "bergen", "uitgeest"]
    static let statuses = ["melding", "onderzoek", "plan", "aanvraag", "beschikking", "levering", "evaluatie"]

    static func caseCells(_ i: Int) -> [(String, CellValue)] {
        [("resident_id", .text(rowID(i + 10_000_000))), ("team", .text(teams[i % teams.count])), ("domain", .text("wmo")),
         ("question", .text("Hulp bij het huishouden en vervoer naar de dagbesteding, casus \(i).")),
         ("status", .text(statuses[i % statuses.count])), ("contact_person", .text("Consulent \(i % 97)")),
         ("melding_date", .text("2026-10-\(10 + i % 18)")), ("application_date", .null), ("safety_risk", .integer(Int64(i % 2))),
         ("next_contact_due", .text("2027-01-\(10 + i % 18)"))]
    }
}

/// Time from a write on one device to its arrival on another that is online and long-polling.
enum Visibility {
    static func measure(writer: SyncEngine, reader: SyncEngine, samples: Int, row: String) throws -> [Double] {
        let arrived = DispatchSemaphore(value: 0)
        let seen = Locked(-1)
        let stop = Locked(false)
        let poller = Thread {
            while !stop.value {
                _ = try? reader.pull(waitSeconds: 5)
                if case .text(let marker)? = try? reader.replica.query("SELECT contact_person FROM cases WHERE id = ?", [.text(row)]).rows.first?.first,
                   let number = Int(marker.dropFirst("visibility ".count)), number > seen.value {
                    seen.value = number
                    arrived.signal()
                }
            }
        }
        poller.start()
        var latencies: [Double] = []
        for sample in 0..<samples {
            try writer.replica.execute("UPDATE cases SET contact_person = ? WHERE id = ?", [.text("visibility \(sample)"), .text(row)])
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try writer.push()
            while seen.value < sample { arrived.wait() }
            latencies.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        stop.value = true
        _ = try writer.replica.execute("UPDATE cases SET contact_person = 'done' WHERE id = ?", [.text(row)])
        _ = try writer.push()  // wakes the poller's last long-poll
        return latencies
    }
}

final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

/// The same work done directly on SQLite, as a yardstick.
/// PostgreSQL's own fastest load of the same cells: `COPY` (through psql) into a table with the same key.
enum RawPostgres {
    static func copyCells(url: String, directory: String, cases: Int) throws -> Double {
        let file = directory + "/raw-cells.csv"
        var csv = ""
        for i in 0..<cases {
            let row = Synthetic.rowID(i)
            for (column, value) in Synthetic.caseCells(i) {
                let text: String
                switch value {
                case .null: text = ""
                case .integer(let v): text = String(v)
                case .real(let v): text = String(v)
                case .text(let v): text = "\"" + v.replacingOccurrences(of: "\"", with: "\"\"") + "\""
                }
                csv += "cases,\(row),\(column),\(text)\n"
            }
        }
        try csv.write(toFile: file, atomically: true, encoding: .utf8)
        try psql(url, "DROP TABLE IF EXISTS kt_bench_raw_cells; CREATE TABLE kt_bench_raw_cells (tbl TEXT, row_id TEXT, col TEXT, value TEXT, PRIMARY KEY (tbl, row_id, col))")
        let seconds = try timed { try psql(url, "\\copy kt_bench_raw_cells FROM '\(file)' WITH (FORMAT csv)") }
        try psql(url, "DROP TABLE kt_bench_raw_cells")
        return seconds
    }

    static func psql(_ url: String, _ command: String) throws {
        try psql(url, arguments: ["-qc", command], label: String(command.prefix(80)))
    }

    /// Runs a file of psql commands.
    static func psql(_ url: String, file: String) throws {
        try psql(url, arguments: ["-qf", file], label: file)
    }

    private static func psql(_ url: String, arguments: [String], label command: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["psql", url, "-v", "ON_ERROR_STOP=1"] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(["PGOPTIONS": "-c client_min_messages=warning"]) { _, new in new }
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ValidationError("psql failed: \(command.prefix(80))") }
    }
}

enum RawSQLite {
    static func open(_ path: String) throws -> SQLiteConnection {
        try? FileManager.default.removeItem(atPath: path)
        let db = try SQLiteConnection(path: path)
        try db.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536;")
        return db
    }

    static func insertCells(path: String, cases: Int) throws {
        let db = try open(path)
        try db.execute("CREATE TABLE cells (tbl TEXT, row_id TEXT, col TEXT, value, PRIMARY KEY (tbl, row_id, col)) WITHOUT ROWID")
        try db.transaction {
            let stmt = try db.prepare("INSERT INTO cells VALUES ('cases', ?, ?, ?)")
            for i in 0..<cases {
                let row = Synthetic.rowID(i)
                for (column, value) in Synthetic.caseCells(i) {
                    try stmt.bind([.text(row), .text(column), value])
                    try stmt.run()
                }
            }
        }
    }

    static func insertRows(path: String, cases: Int) throws {
        let db = try open(path)
        let columns = MicroBench.benchModel.tables[0].columns.map(\.name)
        try db.execute("CREATE TABLE cases (id TEXT PRIMARY KEY, \(columns.joined(separator: ", ")))")
        try db.transaction {
            let stmt = try db.prepare("INSERT INTO cases VALUES (?\(String(repeating: ", ?", count: columns.count)))")
            for i in 0..<cases {
                try stmt.bind([.text(Synthetic.rowID(i))] + Synthetic.caseCells(i).map(\.1))
                try stmt.run()
            }
        }
    }
}

struct Measurement: Codable {
    var name: String
    var count: Int
    var unit: String
    var seconds: Double
    var perSecond: Double
    /// This throughput divided by the raw SQLite cell insert in the same run.
    var ratioToRawSQLite: Double?
    /// The cells the rows held (real-model rows).
    var cells: Int?
    /// Bytes on disk per row (size figures).
    var bytesPerRow: Double?

    init(name: String, count: Int, unit: String, seconds: Double, baseline: Double? = nil) {
        self.name = name
        self.count = count
        self.unit = unit
        self.seconds = seconds
        self.perSecond = Double(count) / max(seconds, 1e-9)
        // Same cell count: the ratio of throughputs is the inverse ratio of times.
        self.ratioToRawSQLite = baseline.map { $0 / max(seconds, 1e-9) }
    }
}

struct Summary: Codable {
    var cases: Int
    var cells: Int
    var pageSize: Int
    var results: [Measurement]
    /// Peak resident memory of client and server, measured apart.
    var memory: [MemoryFigure]
    var peakResidentMegabytes: Double
    var residentBeforeBootstrapMegabytes: Double

    func printTable() {
        print("Keukentafel micro-benchmark (a 10-column model of its own, not the real data model): \(cases) cases, \(cells) cells, page size \(pageSize)")
        print(pad("measurement", 58) + pad("count", 10) + pad("seconds", 10) + pad("per second", 14) + "ratio to raw")
        for r in results {
            if r.unit == "write" {
                print(pad(r.name, 58) + pad("", 10) + pad(String(format: "%.1f ms", r.seconds * 1000), 10))
                continue
            }
            print(pad(r.name, 58) + pad(String(r.count), 10) + pad(String(format: "%.3f", r.seconds), 10)
                  + pad(String(format: "%.0f", r.perSecond), 14) + (r.ratioToRawSQLite.map { String(format: "%.2f", $0) } ?? "-"))
        }
        print("peak resident memory")
        for figure in memory {
            print("  " + pad(figure.name, 74) + (figure.megabytes > 0 ? String(format: "%.0f MB", figure.megabytes) : ""))
        }
        print("  " + pad("the whole kt-bench process (server and in-process clients together)", 74)
              + String(format: "%.0f MB (%.0f MB before the first bootstrap)", peakResidentMegabytes, residentBeforeBootstrapMegabytes))
    }

    func pad(_ text: String, _ width: Int) -> String { text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count) }
}

func timed(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

func timedResult<T>(_ body: () throws -> T) rethrows -> (Double, T) {
    let start = DispatchTime.now().uptimeNanoseconds
    let result = try body()
    return (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, result)
}

/// Runs blocking work (libcurl, SQLite) on a thread of its own, away from the server's threads.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// A peak resident memory figure, in MB.
struct MemoryFigure: Codable {
    var name: String
    var megabytes: Double

    init(name: String, kilobytes: Int) {
        self.name = name
        self.megabytes = Double(kilobytes) / 1024
    }
}

/// This process's peak resident memory (VmHWM), and setting it back so a later peak belongs to what
/// ran since.
enum Memory {
    static func peakKilobytes(of statusFile: String = "/proc/self/status") -> Int {
        guard let status = try? String(contentsOfFile: statusFile, encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        }
        return 0
    }

    /// Writing 5 to clear_refs resets VmHWM to the current resident size (Linux 4.0 and later).
    static func resetPeak() {
        let fd = open("/proc/self/clear_refs", O_WRONLY)
        guard fd >= 0 else { return }
        _ = write(fd, "5", 1)
        close(fd)
    }
}

/// A command run to its end in a child process, with its own peak memory.
enum ChildProcess {
    /// A program in the directory of this executable (release builds put kt beside kt-bench).
    static func besideThisExecutable(_ name: String) -> String? {
        let path = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent(name).path
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    /// Runs `path` with `arguments` (standard output discarded) and returns the child's peak resident
    /// memory in kB. Throws if it cannot start or exits other than with 0.
    ///
    /// The peak is the child's own VmHWM, read from /proc every 50 ms while it runs (a high-water mark,
    /// so each reading is the peak so far; reading it more often took 4 % of this machine's two cores
    /// away from what is measured). Not `wait4`'s `ru_maxrss`: posix_spawn starts the child
    /// in the parent's memory, and at exec Linux counts that memory's peak as the child's.
    static func run(_ path: String, _ arguments: [String]) throws -> Int {
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        var pid: pid_t = 0
        let started = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard started == 0 else { throw ValidationError("cannot start \(path): \(String(cString: strerror(started)))") }
        var status: Int32 = 0
        var peak = 0
        while true {
            let ended = waitpid(pid, &status, WNOHANG)
            if ended == pid { break }
            guard ended == 0 || errno == EINTR else { throw ValidationError("waiting for \(path) failed: \(String(cString: strerror(errno)))") }
            peak = max(peak, Memory.peakKilobytes(of: "/proc/\(pid)/status"))
            usleep(50_000)
        }
        guard status == 0 else { throw ValidationError("\(path) \(arguments.first ?? "") failed (wait status \(status))") }
        return peak
    }
}

/// CPU seconds (user and system) of this process and, apart, of its finished children: on this noisy
/// machine a steadier figure than wall time for "what did the server spend on it".
struct CPUTimes {
    var own: Double
    var children: Double

    static func now() -> CPUTimes {
        func seconds(_ who: Int32) -> Double {
            var usage = rusage()
            getrusage(__rusage_who_t(who), &usage)
            return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        }
        return CPUTimes(own: seconds(RUSAGE_SELF.rawValue), children: seconds(RUSAGE_CHILDREN.rawValue))
    }

    static func - (lhs: CPUTimes, rhs: CPUTimes) -> CPUTimes {
        CPUTimes(own: lhs.own - rhs.own, children: lhs.children - rhs.children)
    }
}
