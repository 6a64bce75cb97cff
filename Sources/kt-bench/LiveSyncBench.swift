import ArgumentParser
import Foundation
import KeukentafelClient
import KeukentafelProcesses
import KeukentafelProtocol
import KeukentafelServer

/// Issue 23: live sync at the scale of a region. A real `ktd serve` (one process on SQLite, or two on
/// one PostgreSQL database) holds N devices' long-polls, spread over the teams of the real data model's
/// synthetic population; the back office then pushes one change to one team's case, and one change to
/// global reference data. For the devices that should wake: the time from the push until each got its
/// answer (p50, p99, last); how many woke that should not; the server's CPU per push; and its resident
/// memory per idle long-poll.
struct LiveSyncBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "live",
        abstract: "Live sync at scale: thousands of long-polling devices, one push (real data model).",
        discussion: """
            Devices are added in steps (--devices 500,2000,5000,10000); at each step every device long-polls
            and the back office pushes --rounds changes to a team's case and as many to global data. Times are
            from the start of the push (the pushing client's own round trip is printed apart). The server is
            `ktd serve` in a process of its own, so its CPU and memory are its alone. Use a release build:
              Tools/bench live
              Tools/bench live --postgres URL          # two ktd processes on one PostgreSQL database
              Tools/bench live --ktd /old/build/ktd    # the same against another build (before/after)
            """)

    @Option(help: ArgumentHelp("Devices long-polling at each step, comma-separated.", valueName: "n,n,…")) var devices = "500,2000,5000,10000"
    @Option(help: "Teams the devices and cases are spread over.") var teams = 50
    @Option(help: "Synthetic cases in the store.") var cases = 2_000
    @Option(help: "Pushes of each kind (team, global) per step.") var rounds = 5
    @Option(help: ArgumentHelp("The data model.", valueName: "file")) var schema: String?
    @Option(help: ArgumentHelp("The ktd to measure (default: ktd next to kt-bench).", valueName: "path")) var ktd: String?
    @Option(help: ArgumentHelp("Keep the store on this (empty) PostgreSQL database, served by two ktd processes.", valueName: "url"))
    var postgres: String?
    @Flag(help: "Print only JSON.") var json = false

    struct Step: Codable {
        var devices: Int
        var kind: String
        /// Devices that should answer per push (a team's count varies by one between teams).
        var shouldWake: Int
        var pushMilliseconds: Double
        var p50: Double
        var p99: Double
        var last: Double
        var missed: Int
        /// Over every round of the step (not per push: one in five rounds must not round down to 0).
        var wokenWrongly: Int?
        var answeredWrongly: Int
        var serverCPUMilliseconds: Double
        var idleBytesPerConnection: Double
    }

    func run() async throws {
        let sizes = devices.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !sizes.isEmpty, sizes.allSatisfy({ $0 > 0 }), sizes == sizes.sorted() else {
            throw ValidationError("--devices takes ascending counts, e.g. 500,2000,5000")
        }
        guard teams >= 1, cases >= teams, rounds >= 1 else { throw ValidationError("need --teams ≥ 1, --cases ≥ --teams and --rounds ≥ 1") }
        // Each device is a socket here and one in ktd (which inherits the limit): raise the soft limit to the hard one.
        var files = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &files)
        files.rlim_cur = files.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &files)
        guard Int(files.rlim_cur) > sizes.last! + 200 else {
            throw ValidationError("\(sizes.last!) devices need more open files than this process may have (\(files.rlim_cur)): raise `ulimit -n`")
        }
        guard let ktdPath = ktd ?? ChildProcess.besideThisExecutable("ktd") else {
            throw ValidationError("no ktd beside kt-bench: build it (Tools/bench does) or pass --ktd")
        }
        guard let schemaPath = schema ?? ServerProcess.schemaPath() else { throw ValidationError("cannot find Schemas/datamodel.yaml; pass --schema") }
        let work = NSTemporaryDirectory() + "kt-bench-live-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }

        let setup = try await Setup.make(work: work, schemaPath: schemaPath, cases: cases, teams: teams, devices: sizes.last!, postgres: postgres)
        let bin = URL(fileURLWithPath: ktdPath).deletingLastPathComponent()
        let extra = ["--max-wait", "300"] + (postgres.map { ["--postgres", $0] } ?? [])
        var servers = [try ServerProcess.start(bin: bin, data: work + "/server", schema: schemaPath, arguments: extra)]
        if postgres != nil { servers.append(try ServerProcess.start(bin: bin, data: work + "/server-2", schema: schemaPath, arguments: extra)) }
        defer { for server in servers { server.stop() } }

        // The back office's replica pushes through the first process; devices alternate between processes.
        let writer = try Replica(path: setup.writerPath)
        let engine = SyncEngine(replica: writer, transport: CurlTransport(baseURL: servers[0].url, token: setup.writerToken))
        _ = try await onThread { try engine.sync() }
        let baseMemory = servers.reduce(0) { $0 + ProcessFigures.residentBytes($1.process.processIdentifier) }

        let clients = LongPollClients(host: "127.0.0.1", wait: 300)
        var steps: [Step] = []
        var opened = 0
        var change = 0
        for size in sizes {
            try await clients.open(opened..<size, tokens: setup.tokens, cursor: setup.head) { servers[$0 % servers.count].port }
            opened = size
            try await Metrics.waitUntil(servers, waiting: size)
            let idle = Double(servers.reduce(0) { $0 + ProcessFigures.residentBytes($1.process.processIdentifier) } - baseMemory) / Double(size)
            for kind in ["team", "global"] {
                var samples: [Double] = [], lasts: [Double] = [], pushes: [Double] = [], cpu: [Double] = []
                var missed = 0, wrongAnswers = 0, wrongWakes: Int? = 0, shouldWake: [Double] = []
                for round in 0..<rounds {
                    let team = (round * 7) % teams
                    let expected = kind == "global" ? Set(0..<size) : Set((0..<size).filter { $0 % teams == team })
                    shouldWake.append(Double(expected.count))
                    change += 1
                    let sql = kind == "global"
                        ? "UPDATE teams SET name = 'Sociaal team \(team + 1) (\(change))' WHERE id = ?"
                        : "UPDATE cases SET contact_person = 'Contact \(change)' WHERE id = ?"
                    let row = kind == "global" ? setup.teamRows[team] : setup.caseOfTeam[team]
                    let wokenBefore = try await Metrics.woken(servers)
                    let cpuBefore = servers.reduce(0) { $0 + ProcessFigures.cpuSeconds($1.process.processIdentifier) }
                    let logged = clients.count
                    try await writer.execute(sql, [.text(row)])
                    let start = DispatchTime.now().uptimeNanoseconds
                    _ = try await onThread { try engine.push() }
                    pushes.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
                    // Every device that should wake answers, and asks again.
                    let deadline = DispatchTime.now().uptimeNanoseconds + 30_000_000_000
                    var first: [Int: UInt64] = [:]
                    while DispatchTime.now().uptimeNanoseconds < deadline {
                        for answer in clients.answers(from: logged) where first[answer.device] == nil {
                        guard answer.status == 200 else {
                            throw ValidationError("device \(answer.device)'s long-poll was answered with HTTP \(answer.status), not 200")
                        }
                        first[answer.device] = answer.at
                    }
                        if expected.isSubset(of: first.keys) { break }
                        try await Task.sleep(for: .milliseconds(2))
                    }
                    try await Metrics.waitUntil(servers, waiting: size)
                    cpu.append(servers.reduce(0) { $0 + ProcessFigures.cpuSeconds($1.process.processIdentifier) } - cpuBefore)
                    let times = expected.compactMap { first[$0] }.map { Double($0 &- start) / 1e6 }
                    missed += expected.count - times.count
                    wrongAnswers += first.keys.filter { !expected.contains($0) }.count
                    samples += times
                    lasts.append(times.max() ?? 0)
                    if let woken = try await Metrics.woken(servers), let before = wokenBefore, wrongWakes != nil {
                        wrongWakes! += max(0, woken - before - expected.count)
                    } else {
                        wrongWakes = nil
                    }
                }
                steps.append(Step(devices: size, kind: kind, shouldWake: Int(median(shouldWake)),
                                  pushMilliseconds: median(pushes), p50: percentile(samples, 0.5), p99: percentile(samples, 0.99),
                                  last: median(lasts), missed: missed, wokenWrongly: wrongWakes,
                                  answeredWrongly: wrongAnswers, serverCPUMilliseconds: median(cpu) * 1000, idleBytesPerConnection: idle))
            }
        }
        await clients.close()

        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(steps), as: UTF8.self))
            return
        }
        print("Live sync: devices long-polling over \(teams) teams (real data model, \(cases) cases, \(setup.rows) rows), "
              + "\(postgres == nil ? "one ktd on SQLite" : "two ktd on PostgreSQL"), \(rounds) pushes of each kind; "
              + "times from the start of the push, in ms")
        let columns: [(String, Int)] = [("devices", 9), ("push to", 9), ("should wake", 12), ("push ms", 9), ("p50", 8), ("p99", 8),
                                        ("last", 8), ("missed", 8), ("woke wrongly", 14), ("answered wrongly", 18), ("server CPU ms", 15),
                                        ("idle KB/connection", 0)]
        func line(_ cells: [String]) -> String { zip(cells, columns).map { pad($0, $1.1) }.joined() }
        print(line(columns.map(\.0)))
        for s in steps {
            let cells: [String] = [
                String(s.devices), s.kind, String(s.shouldWake), String(format: "%.1f", s.pushMilliseconds),
                String(format: "%.1f", s.p50), String(format: "%.1f", s.p99), String(format: "%.1f", s.last), String(s.missed),
                s.wokenWrongly.map(String.init) ?? "n/a", String(s.answeredWrongly), String(format: "%.0f", s.serverCPUMilliseconds),
                String(format: "%.1f", s.idleBytesPerConnection / 1024),
            ]
            print(line(cells))
        }
        print("p50/p99 over every answer of every round; last and CPU: the median round. \"woke wrongly\": long-polls the pushes woke "
              + "whose device may see none of it, over all rounds (n/a: the server does not count them); \"answered wrongly\": "
              + "devices answered that should not have been. \"missed\": devices that should have answered and did not within 30 s.")
    }

    private func pad(_ text: String, _ width: Int) -> String { text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count) }
}

/// The store, filled and with its accounts, before `ktd` serves it.
private struct Setup {
    var writerPath: String
    var writerToken: String
    var tokens: [String]
    var head: Int64
    var rows: Int
    /// Per team (0-based), the id of one of its cases and of its row in `teams`.
    var caseOfTeam: [String]
    var teamRows: [String]

    static func make(work: String, schemaPath: String, cases: Int, teams: Int, devices: Int, postgres: String?) async throws -> Setup {
        let model = try DataModelFile.load(path: schemaPath)
        let store = try postgres.map { try ServerStore(postgres: try PostgresLocation(url: $0), dataModel: model) }
            ?? ServerStore(directory: work + "/server", dataModel: model)
        guard try store.inspection.counts()["cells"] == 0 else { throw ValidationError("--postgres needs an empty database (createdb a new one)") }
        let population = try Population(SyntheticPopulation(municipalities: 5, teams: teams, cases: cases, seed: 11))
        _ = try store.accounts.addUser(name: "office", role: .backOffice, actor: "kt-bench")
        _ = try store.accounts.addScope(Access.everyScope, to: "office", actor: "kt-bench")
        let writerToken = try store.accounts.addDevice(name: "office desk", user: "office").token
        let server = try await LoopbackServer.start(store)
        let writerPath = work + "/office.sqlite"
        let writer = try Replica.connect(path: writerPath, serverURL: server.url, token: writerToken)
        try population.write(into: writer)
        _ = try await onThread { try SyncEngine(replica: writer).sync() }
        await server.stop()

        for team in 1...teams {
            _ = try store.accounts.addUser(name: "consultant-\(team)", role: .consultant, actor: "kt-bench")
            _ = try store.accounts.addScope("team:team-\(team)", to: "consultant-\(team)", actor: "kt-bench")
        }
        let tokens = try (0..<devices).map { try store.accounts.addDevice(name: "laptop \($0)", user: "consultant-\($0 % teams + 1)").token }
        let head = try store.pull(since: 0, limit: 1).head ?? 0
        var caseOfTeam = [String](repeating: "", count: teams), teamRows = [String](repeating: "", count: teams)
        for row in population.rows {
            guard let code = row.values.first(where: { $0.column == (row.table == "teams" ? "code" : "team") })?.value.string,
                  let team = Int(code.dropFirst("team-".count)), (1...teams).contains(team) else { continue }
            if row.table == "cases", caseOfTeam[team - 1].isEmpty { caseOfTeam[team - 1] = row.id }
            if row.table == "teams" { teamRows[team - 1] = row.id }
        }
        return Setup(writerPath: writerPath, writerToken: writerToken, tokens: tokens, head: head, rows: population.rows.count,
                     caseOfTeam: caseOfTeam, teamRows: teamRows)
    }
}

/// What the server's `/metrics` says about its long-polls.
private enum Metrics {
    static func value(_ server: ServerProcess, _ name: String) async throws -> Int? {
        guard let port = server.metricsPort else { return nil }
        let text = try await onThread { try plainGet(port: port, path: "/metrics") }
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.split(separator: " ").last ?? "").map { Int($0) }
        }
        return nil
    }

    /// Long-polls woken so far, over every process (nil: the server does not count them).
    static func woken(_ servers: [ServerProcess]) async throws -> Int? {
        var total = 0
        for server in servers {
            guard let n = try await value(server, "kt_longpolls_woken") else { return nil }
            total += n
        }
        return total
    }

    /// Polls until `waiting` long-polls wait over every process (60 s at most).
    static func waitUntil(_ servers: [ServerProcess], waiting: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            var total = 0
            for server in servers { total += try await value(server, "kt_longpolls_waiting") ?? 0 }
            if total == waiting { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ValidationError("the server never held \(waiting) long-polls")
    }
}

/// CPU time and resident memory of a process, from /proc.
enum ProcessFigures {
    /// Nanosecond CPU time over every thread (`schedstat`), not the 10 ms ticks of `/proc/PID/stat`:
    /// a push that wakes ten devices costs less than one tick.
    static func cpuSeconds(_ pid: Int32) -> Double {
        let threads = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        var nanoseconds = 0.0
        for thread in threads {
            guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(thread)/schedstat", encoding: .utf8),
                  let first = text.split(separator: " ").first, let value = Double(first) else { continue }
            nanoseconds += value
        }
        return nanoseconds / 1e9
    }

    static func residentBytes(_ pid: Int32) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else { return 0 }
        return kilobytes * 1024
    }
}

private func median(_ values: [Double]) -> Double { percentile(values, 0.5) }

private func percentile(_ values: [Double], _ q: Double) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))]
}

/// GET over a plain socket (the connection closes after the answer; read to its end): for `/metrics`, without a client library in the way.
private func plainGet(port: Int, path: String) throws -> String {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ValidationError("socket: errno \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw ValidationError("cannot reach 127.0.0.1:\(port): errno \(errno)") }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
    guard write(fd, request, request.count) == request.count else { throw ValidationError("cannot send to 127.0.0.1:\(port)") }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = read(fd, &buffer, buffer.count)
        if n <= 0 { break }
        response += buffer[0..<n]
    }
    return String(decoding: response, as: UTF8.self)
}
