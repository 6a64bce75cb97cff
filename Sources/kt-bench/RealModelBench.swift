import ArgumentParser
import Foundation
import Hummingbird
import KeukentafelClient
import KeukentafelProcesses
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelSQLite
import Logging
import ServiceLifecycle

/// The real thing (issue 17): `Schemas/datamodel.yaml`, a realistic population from the synthetic
/// generator (households, residents, cases, visits, notes, assessments, plans, provisions, carers,
/// volunteers), written on a replica and moved by real `kt` processes over loopback HTTP. Every
/// throughput is set against raw SQLite (or PostgreSQL `COPY`) storing the same rows as plain tables.
struct RealModelBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "real",
        abstract: "Measure on the real data model: ingest, bootstrap, incremental sync and bytes per row (the default).",
        discussion: """
            A replica writes N synthetic cases with everything that hangs off them; `kt sync` in a process of
            its own pushes them (ingest). Fresh devices then bootstrap with scope * and with one team's scope,
            and a second device changes 1,000 cells that the first pulls (incremental). Raw SQLite inserts the
            same rows into plain tables in the same run; ratios are Keukentafel / raw. Use a release build:
              Tools/bench                    # 20,000 cases on SQLite
              Tools/bench --postgres URL     # the store on an empty PostgreSQL database
            """)

    @Option(help: "Synthetic cases, each with its household, residents and what hangs off the case.") var cases = 20_000
    @Option(help: "Cells changed by the second device for the incremental sync.") var incremental = 1_000
    @Option(help: "Times the incremental sync is repeated; the median is reported.") var incrementalRounds = 5
    @Option(help: ArgumentHelp("The data model.", valueName: "file")) var schema: String?
    @Option(help: "Directory for stores and replicas (default: a new temporary one).") var directory: String?
    @Option(help: ArgumentHelp("Run the store on this PostgreSQL database (empty; e.g. from `createdb`); the baseline is then "
                               + "PostgreSQL's COPY of the same rows (needs psql).", valueName: "url"))
    var postgres: String?
    @Option(help: ArgumentHelp("The kt command (default: kt next to kt-bench).", valueName: "path")) var kt: String?
    @Flag(help: "Print only JSON.") var json = false

    func run() async throws {
        guard let ktCommand = kt ?? ChildProcess.besideThisExecutable("kt") else {
            throw ValidationError("no kt command beside kt-bench: build it (Tools/bench does) or pass --kt")
        }
        guard let schemaPath = schema ?? ServerProcess.schemaPath() else {
            throw ValidationError("cannot find Schemas/datamodel.yaml; pass --schema")
        }
        let model = try DataModelFile.load(path: schemaPath)
        let work = directory ?? NSTemporaryDirectory() + "kt-bench-real-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { if directory == nil { try? FileManager.default.removeItem(atPath: work) } }

        let population = try Population(SyntheticPopulation(municipalities: 4, teams: 8, cases: cases, seed: 7))
        var results: [Measurement] = []
        var notes: [String] = []

        // The baseline: the same rows as plain tables, in one transaction.
        let baselineName: String, baseline: Double
        if let postgres {
            baselineName = "raw PostgreSQL: COPY the rows into plain tables"
            baseline = try RawPostgres.copyRows(url: postgres, directory: work, model: model, rows: population.rows)
        } else {
            baselineName = "raw SQLite: insert the rows into plain tables"
            baseline = try RawSQLite.insertRows(path: work + "/raw-rows.sqlite", model: model, rows: population.rows)
        }
        results.append(Measurement(name: baselineName, count: population.rows.count, unit: "rows", seconds: baseline, cells: population.cells))

        // The server, in this process, on loopback.
        let store = try postgres.map { try ServerStore(postgres: try PostgresLocation(url: $0), dataModel: model) }
            ?? ServerStore(directory: work + "/server", dataModel: model)
        guard try store.inspection.counts()["cells"] == 0 else { throw ValidationError("--postgres needs an empty database (createdb a new one)") }
        let server = try await LoopbackServer.start(store)
        let url = server.url
        _ = try store.accounts.addUser(name: "office", role: .backOffice, actor: "kt-bench")
        _ = try store.accounts.addScope(Access.everyScope, to: "office", actor: "kt-bench")
        _ = try store.accounts.addUser(name: "consultant", role: .consultant, actor: "kt-bench")
        _ = try store.accounts.addScope("team:team-1", to: "consultant", actor: "kt-bench")

        func device(_ name: String, user: String = "office") throws -> String {
            let file = work + "/" + name.replacingOccurrences(of: " ", with: "-") + ".sqlite"
            let token = try store.accounts.addDevice(name: name, user: user).token
            _ = try ChildProcess.run(ktCommand, ["init", "--db", file, "--server", url, "--token", token, "--json", "--plain"])
            return file
        }

        // Written on a replica (captured by its triggers), then pushed by `kt sync`.
        let writer = try device("writer")
        let written = try await onThread { try timed { try population.write(into: try Replica(path: writer)) } }
        let pending = try Replica(path: writer).outboxCounts().pending
        results.append(Measurement(name: "written on a replica with SQL (captured, not timed against raw)", count: population.rows.count,
                                   unit: "rows", seconds: written, cells: pending))
        let ingestCPUStart = CPUTimes.now()
        let (ingest, _) = try await onThread { try timedResult { try ChildProcess.run(ktCommand, ["sync", "--db", writer, "--json"]) } }
        let ingestCPU = CPUTimes.now() - ingestCPUStart
        notes.append(String(format: "CPU during the ingest: server %.2f s (%.0f µs per row), `kt sync` %.2f s (%.0f µs per row)",
                            ingestCPU.own, ingestCPU.own * 1e6 / Double(population.rows.count),
                            ingestCPU.children, ingestCPU.children * 1e6 / Double(population.rows.count)))
        guard try Replica(path: writer).outboxCounts().pending == 0 else { throw ValidationError("the writer's outbox was not emptied") }
        results.append(Measurement(name: "ingest: `kt sync` pushes them", count: population.rows.count, unit: "rows", seconds: ingest,
                                   cells: pending, baseline: baseline))

        // Bytes on disk per row, history included: on SQLite with the write-ahead log copied back and
        // emptied first (what it takes while busy depends on when the checkpointer last ran).
        if postgres == nil {
            let file = try SQLiteConnection(path: work + "/server/" + ServerStore.fileName)
            try file.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        }
        let storeBytes = store.sizeInBytes()
        results.append(Measurement(bytesName: "server store, bytes per row (\(postgres == nil ? "SQLite file and log" : "PostgreSQL database"))",
                                   bytes: storeBytes, rows: population.rows.count))
        results.append(Measurement(bytesName: "writer's replica, bytes per row", bytes: Int(fileBytes(writer)), rows: population.rows.count))
        let rawFile = work + "/raw-rows.sqlite"
        if FileManager.default.fileExists(atPath: rawFile) {
            results.append(Measurement(bytesName: "raw SQLite plain tables, bytes per row", bytes: Int(fileBytes(rawFile)), rows: population.rows.count))
        }

        // Bootstraps: every row (scope *), and one team's rows.
        let office = try device("office desk")
        let bootstrapCPUStart = CPUTimes.now()
        let (bootstrap, officePeak) = try await onThread { try timedResult { try ChildProcess.run(ktCommand, ["sync", "--db", office, "--json"]) } }
        let bootstrapCPU = CPUTimes.now() - bootstrapCPUStart
        let officeRows = try Replica(path: office).totalRows()
        notes.append(String(format: "CPU during the scope-* bootstrap: server %.2f s (%.0f µs per row), `kt sync` %.2f s (%.0f µs per row)",
                            bootstrapCPU.own, bootstrapCPU.own * 1e6 / Double(max(officeRows, 1)),
                            bootstrapCPU.children, bootstrapCPU.children * 1e6 / Double(max(officeRows, 1))))
        results.append(Measurement(name: "bootstrap, scope *: `kt sync` on a new device", count: officeRows, unit: "rows", seconds: bootstrap,
                                   cells: try Replica(path: office).totalCells(), baseline: baseline * Double(officeRows) / Double(population.rows.count)))
        notes.append(String(format: "client peak memory during the scope-* bootstrap: %.0f MB", Double(officePeak) / 1024))
        let team = try device("team laptop", user: "consultant")
        let teamSeconds = try await onThread { try timed { _ = try ChildProcess.run(ktCommand, ["sync", "--db", team, "--json"]) } }
        let teamRows = try Replica(path: team).totalRows()
        results.append(Measurement(name: "bootstrap, one team of 8: `kt sync` on a new device", count: teamRows, unit: "rows", seconds: teamSeconds,
                                   cells: try Replica(path: team).totalCells(), baseline: baseline * Double(teamRows) / Double(population.rows.count)))

        // Incremental: the office desk changes `incremental` cells; the writer pulls them. Each round sets
        // the cases' status to another value; the median round is reported (one round varies a lot here).
        let desk = try SyncEngine(replica: try Replica(path: office))
        let pullingEngine = try SyncEngine(replica: try Replica(path: writer))
        let caseIDs = population.rows.filter { $0.table == "cases" }.prefix(incremental).map(\.id)
        var pushes: [Double] = [], pulls: [Double] = []
        // Process CPU (client and server together: both run here) per round: steadier than wall time on a busy machine.
        var pushCPU: [Double] = [], pullCPU: [Double] = []
        var changed = 0, pulled = 0
        for round in 0..<max(1, incrementalRounds) {
            let status = ["evaluatie", "levering"][round % 2]
            try desk.replica.transaction {
                for id in caseIDs { try desk.replica.execute("UPDATE cases SET status = ? WHERE id = ?", [.text(status), .text(id)]) }
            }
            changed = try desk.replica.outboxCounts().pending
            var cpu = CPUTimes.now()
            pushes.append(try await onThread { try timed { _ = try desk.push() } })
            pushCPU.append((CPUTimes.now() - cpu).own)
            cpu = CPUTimes.now()
            let (pull, report) = try await onThread { try timedResult { try pullingEngine.sync() } }
            pullCPU.append((CPUTimes.now() - cpu).own)
            pulls.append(pull)
            pulled = report.pulled.cellsApplied
        }
        let rounds = pushes.count == 1 ? "" : ", median of \(pushes.count)"
        notes.append(String(format: "CPU of this process (server and client) per incremental round, median: push %.1f ms, pull %.1f ms",
                            pushCPU.sorted()[pushCPU.count / 2] * 1000, pullCPU.sorted()[pullCPU.count / 2] * 1000))
        results.append(Measurement(name: "incremental: a device pushes \(changed) changed cells\(rounds)", count: changed, unit: "cells",
                                   seconds: pushes.sorted()[pushes.count / 2]))
        results.append(Measurement(name: "incremental: another device pulls them\(rounds)", count: pulled, unit: "cells",
                                   seconds: pulls.sorted()[pulls.count / 2]))

        let summary = RealSummary(cases: cases, rows: population.rows.count, cells: population.cells, store: postgres == nil ? "SQLite" : "PostgreSQL",
                                  results: results, notes: notes)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(summary), as: UTF8.self))
        } else {
            summary.printTable()
        }
        await server.stop()
    }

    func fileBytes(_ path: String) -> Int64 {
        [path, path + "-wal"].reduce(0) { total, file in
            total + (((try? FileManager.default.attributesOfItem(atPath: file))?[.size] as? NSNumber)?.int64Value ?? 0)
        }
    }
}

/// The synthetic population as rows (table, id, the columns it sets), in the order it was made.
struct Population {
    struct Row {
        var table: String
        var id: String
        var values: [(column: String, value: CellValue)]
    }

    var rows: [Row] = []
    var cells = 0

    init(_ population: SyntheticPopulation) throws {
        var index: [String: Int] = [:]
        var rows: [Row] = []
        var cells = 0
        try population.generate(node: NodeID.random(), milliseconds: UInt64(Date().timeIntervalSince1970 * 1000)) { batch in
            for change in batch {
                cells += 1
                let key = change.table + "/" + change.row
                if let at = index[key] {
                    rows[at].values.append((change.column, change.value))
                } else {
                    index[key] = rows.count
                    rows.append(Row(table: change.table, id: change.row, values: [(change.column, change.value)]))
                }
            }
        }
        self.rows = rows
        self.cells = cells
    }

    /// Writes every row with plain SQL through the replica's connection, so its triggers capture them.
    func write(into replica: Replica) throws {
        try replica.transaction {
            for row in rows {
                let columns = row.values.map { "\"\($0.column)\"" }.joined(separator: ", ")
                let marks = String(repeating: ", ?", count: row.values.count)
                try replica.execute("INSERT INTO \"\(row.table)\" (id, \(columns)) VALUES (?\(marks))", [.text(row.id)] + row.values.map(\.value))
            }
        }
    }
}

extension Replica {
    /// Cells this replica holds a version of.
    func totalCells() throws -> Int {
        guard case .integer(let n)? = try query("SELECT coalesce(sum(kt_versions_count(versions)), 0) FROM _kt_versions").rows.first?.first else { return 0 }
        return Int(n)
    }

    /// Rows in every synced table.
    func totalRows() throws -> Int {
        try dataModel.tables.reduce(0) { total, table in
            guard case .integer(let n)? = try query("SELECT count(*) FROM \"\(table.name)\"").rows.first?.first else { return total }
            return total + Int(n)
        }
    }
}

extension RawSQLite {
    /// The rows as plain tables of the model's columns, in one transaction: what SQLite itself costs.
    static func insertRows(path: String, model: DataModel, rows: [Population.Row]) throws -> Double {
        let db = try open(path)
        for table in model.tables {
            let columns = table.columns.map { "\"\($0.name)\" \($0.type.sqliteType)" }.joined(separator: ", ")
            try db.execute("CREATE TABLE \"\(table.name)\" (id TEXT PRIMARY KEY, \(columns))")
        }
        return try timed {
            try db.transaction {
                for row in rows {
                    let columns = row.values.map { "\"\($0.column)\"" }.joined(separator: ", ")
                    let statement = try db.cached("INSERT INTO \"\(row.table)\" (id, \(columns)) VALUES (?\(String(repeating: ", ?", count: row.values.count)))")
                    try statement.bind([.text(row.id)] + row.values.map(\.value))
                    try statement.run()
                }
            }
        }
    }
}

extension RawPostgres {
    /// The rows as plain tables (every column `text`), loaded with `COPY` per table.
    static func copyRows(url: String, directory: String, model: DataModel, rows: [Population.Row]) throws -> Double {
        var files: [(table: String, columns: [String], path: String)] = []
        for table in model.tables {
            let columns = table.columns.map(\.name)
            var csv = ""
            for row in rows where row.table == table.name {
                var values = [String](repeating: "", count: columns.count)
                for (column, value) in row.values {
                    guard let at = columns.firstIndex(of: column) else { continue }
                    values[at] = csvField(value)
                }
                csv += "\"\(row.id)\"," + values.joined(separator: ",") + "\n"
            }
            let path = directory + "/raw-\(table.name).csv"
            try csv.write(toFile: path, atomically: true, encoding: .utf8)
            files.append((table.name, columns, path))
            try psql(url, "DROP TABLE IF EXISTS \"kt_raw_\(table.name)\"; CREATE TABLE \"kt_raw_\(table.name)\" (id TEXT PRIMARY KEY, "
                     + columns.map { "\"\($0)\" TEXT" }.joined(separator: ", ") + ")")
        }
        // One psql for every table, so the baseline is COPY and not psql starting 22 times.
        let script = directory + "/raw-copy.sql"
        try files.map { "\\copy \"kt_raw_\($0.table)\" FROM '\($0.path)' WITH (FORMAT csv)" }.joined(separator: "\n")
            .write(toFile: script, atomically: true, encoding: .utf8)
        let seconds = try timed { try psql(url, file: script) }
        for file in files { try psql(url, "DROP TABLE \"kt_raw_\(file.table)\"") }
        return seconds
    }

    static func csvField(_ value: CellValue) -> String {
        switch value {
        case .null: return ""
        case .integer(let v): return String(v)
        case .real(let v): return String(v)
        case .text(let v): return "\"" + v.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
    }
}

extension Measurement {
    /// A throughput in rows, with the cells they held; `baseline` is the raw store's seconds for the same rows.
    init(name: String, count: Int, unit: String, seconds: Double, cells: Int?, baseline: Double? = nil) {
        self.init(name: name, count: count, unit: unit, seconds: seconds, baseline: baseline)
        self.cells = cells
    }

    /// A size figure: bytes per row.
    init(bytesName: String, bytes: Int, rows: Int) {
        self.init(name: bytesName, count: rows, unit: "bytes/row", seconds: 0)
        self.bytesPerRow = Double(bytes) / Double(max(1, rows))
    }
}

struct RealSummary: Codable {
    var cases: Int
    var rows: Int
    var cells: Int
    var store: String
    var results: [Measurement]
    var notes: [String]

    func printTable() {
        print("Keukentafel on the real data model: \(cases) cases, \(rows) rows, \(cells) cells, store on \(store)")
        print(pad("measurement", 64) + pad("rows", 9) + pad("seconds", 9) + pad("rows/s", 10) + pad("cells/s", 10) + "ratio to raw")
        for r in results {
            if let bytes = r.bytesPerRow {
                print(pad(r.name, 64) + pad(String(r.count), 9) + String(format: "%.0f bytes per row", bytes))
                continue
            }
            let cellsPerSecond = r.cells.map { String(format: "%.0f", Double($0) / max(r.seconds, 1e-9)) } ?? "-"
            let count = r.unit == "cells" ? "\(r.count) cells" : String(r.count)
            print(pad(r.name, 64) + pad(count, 9) + pad(String(format: "%.3f", r.seconds), 9)
                  + pad(r.unit == "cells" ? "-" : String(format: "%.0f", r.perSecond), 10)
                  + pad(r.unit == "cells" ? String(format: "%.0f", r.perSecond) : cellsPerSecond, 10)
                  + (r.ratioToRawSQLite.map { String(format: "%.2f", $0) } ?? "-"))
        }
        for note in notes { print(note) }
    }

    func pad(_ text: String, _ width: Int) -> String { text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count) }
}
