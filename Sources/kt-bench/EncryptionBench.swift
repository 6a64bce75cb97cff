import ArgumentParser
import Foundation
import KeukentafelClient
import KeukentafelProcesses
import KeukentafelProtocol
import KeukentafelServer

/// Issue 21: what the encrypted replica costs. On the real data model and population, fresh devices
/// bootstrap (scope *) with `SyncEngine` in this process, plain and encrypted in turn, `rounds` times;
/// then each reads one case by id 2,000 times and scans two tables with a cold cache. The raw
/// baseline is SQLite inserting the same rows as plain tables in the same run.
struct EncryptionBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encryption",
        abstract: "Bootstrap and reads on an encrypted replica against a plain one (real data model).",
        discussion: """
            Prints rows/s of a bootstrap, read latency (p50/p99), a cold scan, the time to unlock the key
            and the file size, plain and encrypted, and the ratio encrypted / plain. Use a release build:
              Tools/bench encryption --cases 5000
            """)

    @Option(help: "Synthetic cases, each with its household, residents and what hangs off the case.") var cases = 5_000
    @Option(help: "Plain and encrypted bootstraps each run this many times, alternating.") var rounds = 2
    @Option(help: ArgumentHelp("The data model.", valueName: "file")) var schema: String?

    struct Figures {
        var bootstrapSeconds: [Double] = []
        var readP50: [Double] = []
        var readP99: [Double] = []
        var scanSeconds: [Double] = []
        var openSeconds: [Double] = []
        var bytes = 0
    }

    func run() async throws {
        guard let schemaPath = schema ?? ServerProcess.schemaPath() else { throw ValidationError("cannot find Schemas/datamodel.yaml; pass --schema") }
        let model = try DataModelFile.load(path: schemaPath)
        let work = NSTemporaryDirectory() + "kt-bench-encryption-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }

        let population = try Population(SyntheticPopulation(municipalities: 4, teams: 8, cases: cases, seed: 7))
        let raw = try RawSQLite.insertRows(path: work + "/raw.sqlite", model: model, rows: population.rows)
        let store = try ServerStore(directory: work + "/server", dataModel: model)
        let server = try await LoopbackServer.start(store)
        _ = try store.accounts.addUser(name: "office", role: .backOffice, actor: "kt-bench")
        _ = try store.accounts.addScope(Access.everyScope, to: "office", actor: "kt-bench")
        let passphrase = "a passphrase for the benchmark"
        func device(_ name: String, _ encryption: ReplicaEncryption) throws -> Replica {
            try Replica.connect(path: work + "/\(name).sqlite", serverURL: server.url,
                                token: try store.accounts.addDevice(name: name, user: "office").token, encryption: encryption)
        }
        let writer = try device("writer", .none)
        try population.write(into: writer)
        _ = try await onThread { try SyncEngine(replica: writer).sync() }
        let caseID = try population.rows.first { $0.table == "cases" }.map(\.id) ?? { throw ValidationError("no case") }()

        var plain = Figures(), encrypted = Figures()
        for round in 1...rounds {
            for isEncrypted in [false, true] {
                let name = "device-\(round)-\(isEncrypted ? "encrypted" : "plain")"
                let path = work + "/\(name).sqlite"
                let replica = try device(name, isEncrypted ? .passphrase(passphrase) : .none)
                let seconds = try await onThread { try timed { _ = try SyncEngine(replica: replica).sync() } }
                var figures = isEncrypted ? encrypted : plain
                figures.bootstrapSeconds.append(seconds)
                figures.bytes = Int((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)??.intValue ?? 0)
                    + Int((try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? NSNumber)??.intValue ?? 0)

                // Reads on a replica opened afresh, as an app does at start: its caches are cold.
                var reopened: Replica?
                figures.openSeconds.append(try timed { reopened = try Replica(path: path, passphrase: isEncrypted ? passphrase : nil) })
                let fresh = try require(reopened)
                figures.scanSeconds.append(try timed {
                    _ = try fresh.query("SELECT count(*), sum(length(question)), sum(length(status)) FROM cases")
                    _ = try fresh.query("SELECT count(*), sum(length(summary)) FROM visits")
                })
                var samples: [Double] = []
                for _ in 0..<2_000 { samples.append(try timed { _ = try fresh.query("SELECT status, team FROM cases WHERE id = ?", [.text(caseID)]) }) }
                samples.sort()
                figures.readP50.append(samples[samples.count / 2])
                figures.readP99.append(samples[samples.count * 99 / 100])
                if isEncrypted { encrypted = figures } else { plain = figures }
            }
        }
        await server.stop()

        let rows = population.rows.count
        func median(_ values: [Double]) -> Double { let s = values.sorted(); return s.isEmpty ? 0 : s[s.count / 2] }
        print("Encrypted replica against a plain one (real data model: \(cases) cases, \(rows) rows, \(population.cells) cells; "
              + "median of \(rounds) rounds, alternating)")
        print("raw SQLite inserting the same rows as plain tables: \(String(format: "%.0f", Double(rows) / raw)) rows/s")
        func line(_ name: String, _ p: Double, _ e: Double, _ format: String, lowerIsBetter: Bool) {
            let ratio = lowerIsBetter ? p / e : e / p
            func column(_ text: String) -> String { String(repeating: " ", count: max(0, 14 - text.count)) + text }
            print(name.padding(toLength: 44, withPad: " ", startingAt: 0)
                  + column(String(format: format, p)) + " " + column(String(format: format, e)) + String(format: "   %.2f", ratio))
        }
        print("".padding(toLength: 44, withPad: " ", startingAt: 0) + "         plain      encrypted   encrypted as a share of plain")
        line("bootstrap (scope *), rows/s", Double(rows) / median(plain.bootstrapSeconds), Double(rows) / median(encrypted.bootstrapSeconds),
             "%.0f", lowerIsBetter: false)
        line("bootstrap as a share of raw SQLite", raw / median(plain.bootstrapSeconds), raw / median(encrypted.bootstrapSeconds), "%.3f", lowerIsBetter: false)
        line("read one case by id, p50 ms", median(plain.readP50) * 1000, median(encrypted.readP50) * 1000, "%.3f", lowerIsBetter: true)
        line("read one case by id, p99 ms", median(plain.readP99) * 1000, median(encrypted.readP99) * 1000, "%.3f", lowerIsBetter: true)
        line("cold scan of cases and visits, ms", median(plain.scanSeconds) * 1000, median(encrypted.scanSeconds) * 1000, "%.1f", lowerIsBetter: true)
        line("open the replica (unlock the key), ms", median(plain.openSeconds) * 1000, median(encrypted.openSeconds) * 1000, "%.1f", lowerIsBetter: true)
        line("file and WAL, MB", Double(plain.bytes) / 1e6, Double(encrypted.bytes) / 1e6, "%.1f", lowerIsBetter: true)
    }
}

private func require<T>(_ value: T?) throws -> T {
    guard let value else { throw ValidationError("missing value") }
    return value
}
