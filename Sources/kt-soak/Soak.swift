import ArgumentParser
import Foundation
import KeukentafelClient
import KeukentafelProcesses
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelSQLite

/// Soak: many simulated devices (each its own replica file and sync engine) make random edits and
/// sync against one real `ktd` for minutes. Reports errors, the server's resident memory over time,
/// and whether every replica holds the same data at the end.
@main
struct Soak: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kt-soak",
        abstract: "Many devices syncing random edits against one server for minutes: errors, server memory, equal replicas.",
        discussion: """
            Devices are replicas in one process, driven by a pool of worker threads; the server is a real
            ktd child process whose resident memory is sampled every 10 s.
              kt-soak --devices 500 --minutes 5          # Tools/soak runs this on a release build
            """)

    @Option(help: "Simulated devices.") var devices = 500
    @Option(help: "Minutes of editing and syncing.") var minutes = 5.0
    @Option(help: "Worker threads driving the devices.") var workers = 16
    @Option(help: "Seed of the random edits.") var seed: UInt64 = 1
    @Option(help: "Work directory (default: a new temporary one, removed on success).") var work: String?
    @Flag(help: "Print JSON.") var json = false

    struct Summary: Codable {
        var devices: Int
        var minutes: Double
        var syncs = 0
        var edits = 0
        var errors = 0
        var firstErrors: [String] = []
        var serverRSSMegabytes: [Double] = []
        var serverRSSAfterWarmUp = 0.0
        var serverRSSAtEnd = 0.0
        var replicasEqual = false
        var cellsOnServer = 0
    }

    func run() throws {
        let directory = work ?? (NSTemporaryDirectory() + "kt-soak-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(atPath: directory + "/replicas", withIntermediateDirectories: true)
        let bin = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let schema = try Self.schemaPath()
        let model = try DataModelFile.load(path: schema)
        let data = directory + "/data"
        var tokens: [String] = []
        do {
            let store = try ServerStore(directory: data, dataModel: model)
            _ = try store.demo.load()
            _ = try store.accounts.addUser(name: "office", role: .backOffice, actor: "kt-soak")
            _ = try store.accounts.addScope(Access.everyScope, to: "office", actor: "kt-soak")
            for i in 0..<devices { tokens.append(try store.accounts.addDevice(name: "device \(i)", user: "office").token) }
        }
        let server = try ServerProcess.start(bin: bin, data: data, schema: schema)
        defer { server.stop() }
        let url = "http://127.0.0.1:\(server.port)"
        let engines = try tokens.enumerated().map { index, token in
            try SyncEngine(replica: Replica.create(path: directory + "/replicas/\(index).sqlite", dataModel: model, serverURL: url, token: token))
        }

        let state = SoakState(devices: devices, minutes: minutes)
        let deadline = Date().addingTimeInterval(minutes * 60)
        let cases = [DemoData.deVriesCase] + (1...4).map { "c0000000-0000-4000-8000-00000000000\($0)" }
        let group = DispatchGroup()
        for worker in 0..<workers {
            group.enter()
            Thread {
                defer { group.leave() }
                var random = SplitMix64(seed: seed &+ UInt64(worker) &* 7919)
                var next = worker
                while Date() < deadline {
                    let engine = engines[next % engines.count]
                    next += workers
                    do {
                        if random.next() % 3 != 0 {
                            let caseID = cases[Int(random.next() % UInt64(cases.count))]
                            if random.next() % 2 == 0 {
                                try engine.replica.execute("INSERT INTO notes (id, case_id, author, body) VALUES (?, ?, ?, ?)",
                                                           [.text(UUID().uuidString.lowercased()), .text(caseID), .text("soak"),
                                                            .text("note \(random.next() % 1_000_000)")])
                            } else {
                                try engine.replica.execute("UPDATE cases SET contact_person = ? WHERE id = ?",
                                                           [.text("soak \(random.next() % 1000)"), .text(caseID)])
                            }
                            state.edited()
                        }
                        try engine.sync()
                        state.synced()
                    } catch {
                        state.failed("\(error)")
                    }
                }
            }.start()
        }
        // Sample the server's memory while the devices work.
        let started = Date()
        while group.wait(timeout: .now() + 10) == .timedOut {
            state.sample(Self.residentMegabytes(server.process.processIdentifier), warmUp: Date().timeIntervalSince(started) < 60)
        }
        state.sample(Self.residentMegabytes(server.process.processIdentifier), warmUp: false)

        // Quiescence, then compare every replica.
        for _ in 0..<2 { for engine in engines { do { try engine.sync() } catch { state.failed("final sync: \(error)") } } }
        var summary = state.summary
        var fingerprints = Set<String>()
        for engine in engines { fingerprints.insert(try Self.fingerprint(engine.replica)) }
        summary.replicasEqual = fingerprints.count == 1
        summary.cellsOnServer = try Self.serverCells(data)

        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(summary), as: UTF8.self))
        } else {
            print("""
                kt-soak: \(devices) devices, \(String(format: "%.1f", minutes)) minutes, \(workers) workers
                syncs \(summary.syncs), edits \(summary.edits), errors \(summary.errors)\(summary.firstErrors.isEmpty ? "" : " (first: \(summary.firstErrors[0]))")
                server RSS after warm-up \(String(format: "%.0f", summary.serverRSSAfterWarmUp)) MB, at the end \(String(format: "%.0f", summary.serverRSSAtEnd)) MB \
                (samples: \(summary.serverRSSMegabytes.map { String(format: "%.0f", $0) }.joined(separator: " ")))
                replicas equal: \(summary.replicasEqual ? "yes" : "NO"); cells on the server \(summary.cellsOnServer)
                """)
        }
        let ok = summary.errors == 0 && summary.replicasEqual
        if ok, work == nil { try? FileManager.default.removeItem(atPath: directory) }
        if !ok { throw ExitCode(1) }
    }

    static func residentMegabytes(_ pid: Int32) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kilobytes = line.split(separator: " ").compactMap({ Double($0) }).first else { return 0 }
        return kilobytes / 1024
    }

    static func fingerprint(_ replica: Replica) throws -> String {
        var text = ""
        for table in ["cases", "notes"] {
            for row in try replica.query("SELECT * FROM \(table) ORDER BY id").rows { text += row.map(\.description).joined(separator: "|") + "\n" }
        }
        return text
    }

    static func serverCells(_ data: String) throws -> Int {
        let connection = try SQLiteConnection(path: data + "/" + ServerStore.fileName)
        guard case .integer(let count)? = try connection.scalar("SELECT sum(n) FROM records") else { return 0 }
        return Int(count)
    }

    static func schemaPath() throws -> String {
        guard let path = ServerProcess.schemaPath() else { throw ValidationError("cannot find Schemas/datamodel.yaml; run from the repository") }
        return path
    }
}

/// Counters shared by the worker threads.
final class SoakState: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Soak.Summary

    init(devices: Int, minutes: Double) { value = Soak.Summary(devices: devices, minutes: minutes) }

    func edited() { lock.withLock { value.edits += 1 } }
    func synced() { lock.withLock { value.syncs += 1 } }
    func failed(_ why: String) {
        lock.withLock {
            value.errors += 1
            if value.firstErrors.count < 5 { value.firstErrors.append(why) }
        }
    }
    func sample(_ megabytes: Double, warmUp: Bool) {
        lock.withLock {
            value.serverRSSMegabytes.append(megabytes)
            if !warmUp, value.serverRSSAfterWarmUp == 0 { value.serverRSSAfterWarmUp = megabytes }
            value.serverRSSAtEnd = megabytes
        }
    }
    var summary: Soak.Summary { lock.withLock { value } }
}
