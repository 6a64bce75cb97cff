import ArgumentParser
import Foundation
import KeukentafelClient
import KeukentafelProcesses
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelSQLite

/// Crash torture: the real `ktd` and `kt` as child processes, killed with SIGKILL at random instants
/// during local writes, pushes, pulls and page applies, and the server killed in the middle of syncs.
/// After every kill the killed process's file must pass `PRAGMA integrity_check`; at the end, after a
/// restart and syncing to quiescence, every write that reached a replica's file must be on the server
/// and on every replica, no change may be stored twice, and all replicas must be equal.
@main
struct Torture: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kt-torture",
        abstract: "kill -9 the sync client and server at random instants and check that nothing is lost.",
        discussion: """
            Seeded and repeatable: the same --seed makes the same choices (the instants of the kills vary with
            the machine's speed). Prints a summary, or JSON with --json; exits 1 if anything was lost,
            duplicated or damaged.
              kt-torture --kills 200 --seed 7          # Tools/torture runs this on a release build
            """)

    @Option(help: "How many processes to kill.") var kills = 200
    @Option(help: "Seed of the random choices.") var seed: UInt64 = 1
    @Option(help: "Replicas (devices).") var replicas = 3
    @Option(help: "Work directory (default: a new temporary one, removed on success).") var work: String?
    @Flag(help: "Print JSON.") var json = false

    struct Summary: Codable {
        var seed: UInt64
        var kills = 0
        var clientKills = 0
        var serverKills = 0
        var writes = 0
        var writesThatMustArrive = 0
        var lost = 0
        var duplicated = 0
        var integrityFailures = 0
        var replicasEqual = false
        var seconds = 0.0
    }

    func run() throws {
        let started = Date()
        let directory = work ?? (NSTemporaryDirectory() + "kt-torture-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let bin = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        var random = SplitMix64(seed: seed)
        var summary = Summary(seed: seed)

        // The server's store, a user and one device per replica, made before ktd owns the store.
        let data = directory + "/data"
        let schema = try Self.schemaPath()
        let model = try DataModelFile.load(path: schema)
        var tokens: [String] = []
        do {
            let store = try ServerStore(directory: data, dataModel: model)
            _ = try store.demo.load()
            _ = try store.accounts.addUser(name: "office", role: .backOffice, actor: "kt-torture")
            _ = try store.accounts.addScope(Access.everyScope, to: "office", actor: "kt-torture")
            for i in 0..<replicas { tokens.append(try store.accounts.addDevice(name: "device \(i)", user: "office").token) }
        }
        var server = try ServerProcess.start(bin: bin, data: data, schema: schema, port: 0)
        let url = "http://127.0.0.1:\(server.port)"
        let paths = (0..<replicas).map { directory + "/replica-\($0).sqlite" }
        for (path, token) in zip(paths, tokens) { _ = try Replica.create(path: path, dataModel: model, serverURL: url, token: token) }

        var mustArrive = Set<String>()
        var writeNumber = 0
        while summary.kills < kills {
            let replica = Int(random.next() % UInt64(replicas))
            let path = paths[replica]
            switch random.next() % 10 {
            case 0...4:  // a local write, killed early or let finish
                writeNumber += 1
                summary.writes += 1
                let id = UUID().uuidString.lowercased()
                let sql = "INSERT INTO notes (id, case_id, author, body) VALUES ('\(id)', '\(DemoData.deVriesCase)', 'device \(replica)', 'torture \(writeNumber)');"
                    + " UPDATE cases SET contact_person = 'write \(writeNumber)' WHERE id = '\(DemoData.deVriesCase)'"
                let kill = random.next() % 2 == 0
                let outcome = try Child.run(bin.appendingPathComponent("kt"), ["sql", "--db", path, sql],
                                            killAfterMicroseconds: kill ? UInt32(random.next() % 60_000) : nil)
                if outcome.killed { summary.kills += 1; summary.clientKills += 1 }
                if !Self.intact(path) { summary.integrityFailures += 1 }
                let reachedTheFile = try Self.noteIDs(path).contains(id)
                if outcome.status == 0 || (outcome.killed && reachedTheFile) { mustArrive.insert(id) }
                if outcome.status == 0, !reachedTheFile { summary.lost += 1 }  // acknowledged, yet not written
            case 5...8:  // a sync (push, pull, page apply), killed at a random instant
                let outcome = try Child.run(bin.appendingPathComponent("kt"), ["sync", "--db", path],
                                            killAfterMicroseconds: UInt32(random.next() % 400_000))
                if outcome.killed { summary.kills += 1; summary.clientKills += 1 }
                if !Self.intact(path) { summary.integrityFailures += 1 }
            default:  // the server dies in the middle of a sync
                let sync = try Child.start(bin.appendingPathComponent("kt"), ["sync", "--db", path])
                usleep(UInt32(random.next() % 150_000))
                server.kill()
                summary.kills += 1
                summary.serverKills += 1
                sync.waitUntilExit()
                if !Self.intact(data + "/" + ServerStore.fileName) { summary.integrityFailures += 1 }
                if !Self.intact(path) { summary.integrityFailures += 1 }
                server = try ServerProcess.start(bin: bin, data: data, schema: schema, port: server.port)
            }
        }

        // Quiescence: every replica syncs until nothing moves, twice around.
        for _ in 0..<2 {
            for path in paths {
                let outcome = try Child.run(bin.appendingPathComponent("kt"), ["sync", "--db", path], killAfterMicroseconds: nil)
                if outcome.status != 0 { throw ValidationError("the final sync of \(path) failed: \(outcome.output)") }
            }
        }
        server.stop()

        summary.writesThatMustArrive = mustArrive.count
        let onServer = try Self.serverNoteIDs(data)
        var snapshots: [[String]] = []
        for path in paths {
            if !Self.intact(path) { summary.integrityFailures += 1 }
            let local = try Self.noteIDs(path)
            summary.lost += mustArrive.subtracting(local).count
            snapshots.append(try Self.snapshot(path))
        }
        summary.lost += mustArrive.subtracting(onServer).count
        summary.duplicated = try ServerStore(directory: data, dataModel: model).inspection.duplicatedWrites()
        if !Self.intact(data + "/" + ServerStore.fileName) { summary.integrityFailures += 1 }
        summary.replicasEqual = Set(snapshots.map { $0.joined(separator: "\n") }).count == 1
        summary.seconds = Date().timeIntervalSince(started)

        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(summary), as: UTF8.self))
        } else {
            print("""
                kt-torture seed \(seed): \(summary.kills) kills (\(summary.clientKills) client, \(summary.serverKills) server) in \
                \(String(format: "%.0f", summary.seconds)) s
                writes \(summary.writes), of which reached a replica's file \(summary.writesThatMustArrive)
                lost \(summary.lost), duplicated \(summary.duplicated), integrity failures \(summary.integrityFailures), \
                replicas equal: \(summary.replicasEqual ? "yes" : "NO")
                """)
        }
        let ok = summary.lost == 0 && summary.duplicated == 0 && summary.integrityFailures == 0 && summary.replicasEqual
        if ok, work == nil { try? FileManager.default.removeItem(atPath: directory) }
        if !ok {
            if !json { print("Files kept in \(directory)") }
            throw ExitCode(1)
        }
    }

    static func schemaPath() throws -> String {
        guard let path = ServerProcess.schemaPath() else { throw ValidationError("cannot find Schemas/datamodel.yaml; run from the repository") }
        return path
    }

    static func intact(_ path: String) -> Bool {
        guard let connection = try? SQLiteConnection(path: path) else { return false }
        return (try? connection.scalar("PRAGMA integrity_check")) == .text("ok")
    }

    static func noteIDs(_ path: String) throws -> Set<String> {
        let connection = try SQLiteConnection(path: path)
        return Set(try connection.query("SELECT id FROM notes").compactMap { if case .text(let id) = $0[0] { return id } else { return nil } })
    }

    static func serverNoteIDs(_ data: String) throws -> Set<String> {
        let connection = try SQLiteConnection(path: data + "/" + ServerStore.fileName)
        return Set(try connection.query("SELECT row_id FROM records WHERE tbl = 'notes'").compactMap {
            if case .text(let id) = $0[0] { return id } else { return nil }
        })
    }

    /// Every synced row of the replica, as text, for comparing replicas.
    static func snapshot(_ path: String) throws -> [String] {
        let connection = try SQLiteConnection(path: path)
        var lines: [String] = []
        for table in ["cases", "notes", "residents", "visits"] {
            lines += try connection.query("SELECT * FROM \(table) ORDER BY id").map { "\(table): " + $0.map(\.description).joined(separator: "|") }
        }
        return lines
    }
}

/// A `kt` child process, optionally killed with SIGKILL after a delay.
enum Child {
    struct Outcome {
        var status: Int32
        var killed: Bool
        var output: String
    }

    static func start(_ executable: URL, _ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    static func run(_ executable: URL, _ arguments: [String], killAfterMicroseconds delay: UInt32?) throws -> Outcome {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        var killed = false
        if let delay {
            usleep(delay)
            if process.isRunning {
                Glibc.kill(process.processIdentifier, SIGKILL)
                killed = true
            }
        }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        killed = killed && process.terminationReason == .uncaughtSignal
        return Outcome(status: process.terminationStatus, killed: killed, output: text)
    }
}
