import ArgumentParser
import Foundation
import KeukentafelClient
import KeukentafelProcesses
import KeukentafelProtocol
import KeukentafelServer

/// Issue 18: how long a screen's read takes on a `Replica` while that replica bootstraps. On the real
/// data model and population: a fresh device downloads every row (scope *) with `SyncEngine` in this
/// process while another thread reads one case by id, about 500 times a second, as a screen would.
/// Twice, on two fresh devices: the reads through `query` (the read pool), then through the writer
/// connection (`transaction { query }`: how every read went before the pool), and once more on the
/// idle replica afterwards.
struct ReadLatencyBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reads",
        abstract: "Read latency on a replica while it bootstraps (real data model).",
        discussion: """
            Prints p50, p99 and the worst read in milliseconds, through the read pool and through the writer,
            during a bootstrap and on the idle replica. Use a release build:
              Tools/bench reads --cases 20000
            """)

    @Option(help: "Synthetic cases, each with its household, residents and what hangs off the case.") var cases = 20_000
    @Option(help: ArgumentHelp("The data model.", valueName: "file")) var schema: String?
    @Option(help: "Pause between two reads, in microseconds (a screen reads now and then, not in a tight loop).") var pause: UInt32 = 2_000

    struct Figures: Codable {
        var name: String
        var reads: Int
        var p50: Double
        var p99: Double
        var max: Double
    }

    func run() async throws {
        guard let schemaPath = schema ?? ServerProcess.schemaPath() else { throw ValidationError("cannot find Schemas/datamodel.yaml; pass --schema") }
        let model = try DataModelFile.load(path: schemaPath)
        let work = NSTemporaryDirectory() + "kt-bench-reads-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }

        let population = try Population(SyntheticPopulation(municipalities: 4, teams: 8, cases: cases, seed: 7))
        let store = try ServerStore(directory: work + "/server", dataModel: model)
        let server = try await LoopbackServer.start(store)
        _ = try store.accounts.addUser(name: "office", role: .backOffice, actor: "kt-bench")
        _ = try store.accounts.addScope(Access.everyScope, to: "office", actor: "kt-bench")
        func device(_ name: String) throws -> Replica {
            try Replica.connect(path: work + "/\(name).sqlite", serverURL: server.url, token: try store.accounts.addDevice(name: name, user: "office").token)
        }
        let writer = try device("writer")
        try population.write(into: writer)
        let cells = try writer.outboxCounts().pending
        _ = try await onThread { try SyncEngine(replica: writer).sync() }
        let caseID = try require(population.rows.first { $0.table == "cases" }?.id, "a case")
        let sql = "SELECT status, team FROM cases WHERE id = ?"

        var figures: [Figures] = []
        for throughWriter in [false, true] {
            let replica = try device(throughWriter ? "through-writer" : "through-pool")
            let arguments: [CellValue] = [.text(caseID)]
            let read: @Sendable () throws -> Void
            if throughWriter {
                read = { _ = try replica.transaction { try replica.query(sql, arguments) } }
            } else {
                read = { _ = try replica.query(sql, arguments) }
            }
            let samples = try await during(read) { _ = try SyncEngine(replica: replica).sync() }
            figures.append(Self.figures((throughWriter ? "through the writer (before)" : "through the read pool (now)") + ", during the bootstrap", samples))
            if !throughWriter {
                var idle: [Double] = []
                for _ in 0..<2_000 { idle.append(try timed(read)) }
                figures.append(Self.figures("through the read pool, idle replica", idle))
            }
        }
        await server.stop()

        print("Read latency on a replica while it bootstraps (real data model: \(cases) cases, \(population.rows.count) rows, \(cells) cells; "
              + "one case by id, a pause of \(pause) µs between reads)")
        print("reads".padding(toLength: 58, withPad: " ", startingAt: 0) + "count     p50 ms    p99 ms    max ms")
        for f in figures {
            print(f.name.padding(toLength: 58, withPad: " ", startingAt: 0)
                  + String(format: "%-10d%-10.3f%-10.3f%.3f", f.reads, f.p50, f.p99, f.max))
        }
    }

    /// Reads over and over on a thread of its own while `work` runs; the latencies in seconds.
    func during(_ read: @escaping @Sendable () throws -> Void, _ work: @escaping @Sendable () throws -> Void) async throws -> [Double] {
        let done = Flag()
        let pause = self.pause
        let reader = Task.detached { () -> [Double] in
            var samples: [Double] = []
            while !done.isSet {
                samples.append((try? timed(read)) ?? .infinity)
                usleep(pause)
            }
            return samples
        }
        try await onThread(work)
        done.set()
        return await reader.value
    }

    static func figures(_ name: String, _ samples: [Double]) -> Figures {
        let sorted = samples.sorted()
        func at(_ q: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))] * 1000 }
        return Figures(name: name, reads: sorted.count, p50: at(0.5), p99: at(0.99), max: (sorted.last ?? 0) * 1000)
    }
}

private final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

private func require<T>(_ value: T?, _ what: String = "value") throws -> T {
    guard let value else { throw ValidationError("missing \(what)") }
    return value
}
