import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelTesting
import Testing

/// Long-poll and the sync daemon: an online device sees a colleague's change without asking again.
@Suite struct LiveSyncTests {
    @Test func aLongPollReturnsAsSoonAsSomethingChanges() async throws {
        let server = try await TestServer.start()
        let laptop = try server.replica("laptop"), office = try server.replica("office")
        try await office.sync()
        let engine = SyncEngine(replica: office, transport: CurlTransport(baseURL: server.url, token: try office.token))
        let started = ContinuousClock.now
        async let waited = onThread { try engine.pull(waitSeconds: 25) }
        // Once the pull is parked on the server, a colleague pushes.
        while server.sync.notifier.waiting == 0 { await Task.yield() }
        let (_, caseID) = try seedCase(on: laptop)
        try await laptop.sync()
        let report = try await waited
        #expect(report.pulled.cellsApplied > 0)
        #expect(try office.value("cases", caseID, "team") == .text("castricum-noord"))
        #expect(ContinuousClock.now - started < .seconds(20), "woken by the push, not by the 25 s deadline")
        #expect(server.sync.notifier.waiting == 0)
        await server.stop()
    }

    @Test func aLongPollWithNothingNewAnswersEmptyAtTheDeadline() async throws {
        let server = try await TestServer.start()
        let office = try server.replica("office")
        let engine = SyncEngine(replica: office, transport: CurlTransport(baseURL: server.url, token: try office.token))
        let report = try await onThread { try engine.pull(waitSeconds: 1) }
        #expect(report.pulled.cellsReceived == 0)
        #expect(report.pages == 1)
        await server.stop()
    }

    @Test("a graceful shutdown answers a parked long-poll at once instead of waiting for its deadline")
    func shutdownAnswersParkedLongPolls() async throws {
        let server = try await TestServer.start()
        let office = try server.replica("office")
        let engine = try SyncEngine(replica: office)
        try await engine.sync()
        let pull = Task { try await engine.pull(waitSeconds: 30) }
        while server.sync.notifier.waiting == 0 { await Task.yield() }
        let stopping = ContinuousClock.now
        await server.stop()
        #expect(ContinuousClock.now - stopping < .seconds(15), "the shutdown did not wait out the 30 s long-poll")
        let report = try await pull.value
        #expect(report.pulled.cellsReceived == 0, "answered with an empty page, not an error")
    }

    @Test func ktDaemonOnTwoReplicasCarriesAWriteAcrossWithoutAManualSync() async throws {
        let server = try await TestServer.start()
        let directory = try temporaryDirectory("daemons")
        let a = try Replica.create(path: directory + "/a.sqlite", dataModel: server.store.dataModel, serverURL: server.url, token: try server.token("a"))
        let b = try Replica.create(path: directory + "/b.sqlite", dataModel: server.store.dataModel, serverURL: server.url, token: try server.token("b"))
        let daemons = try [a, b].map { replica -> (Process, Pipe) in
            let process = Process()
            process.executableURL = CommandLineTests.binDirectory.appendingPathComponent("kt")
            process.arguments = ["daemon", "--db", replica.path]  // the default 25 s long-poll: writes must not wait for it
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            return (process, out)
        }
        defer { for (process, _) in daemons where process.isRunning { process.terminate() } }

        let (_, caseID) = try seedCase(on: a, name: "Sanne")  // an ordinary local write on A, nothing else
        // B's daemon says when it applied something; then B must have the case.
        let bOutput = daemons[1].1.fileHandleForReading
        let output = try await onThread { () -> String in
            var output = ""
            while !output.contains("pulled") {
                let chunk = bOutput.availableData  // blocks: on a thread of its own
                if chunk.isEmpty { throw TestFailure("B's daemon ended: \(output)") }
                output += String(decoding: chunk, as: UTF8.self)
            }
            return output
        }
        #expect(output.contains("pulled"))
        let reopened = try Replica(path: b.path)
        #expect(try reopened.value("cases", caseID, "team") == .text("castricum-noord"))

        // SIGTERM stops both cleanly.
        let processes = daemons.map(\.0)
        let statuses = try await onThread { processes.map { $0.terminate(); $0.waitUntilExit(); return $0.terminationStatus } }
        #expect(statuses == [0, 0])
        let tail = try await onThread { String(decoding: bOutput.readDataToEndOfFile(), as: UTF8.self) }
        #expect(tail.contains("stopped"))
        await server.stop()
    }
}

extension LiveSyncTests {
    /// Reads a child's output until `marker` appears after `start` bytes; returns everything read.
    static func readUntil(_ marker: String, from handle: FileHandle, after start: String = "") async throws -> String {
        try await onThread { () -> String in
            var output = start
            let from = output.endIndex
            while !output[from...].contains(marker) {
                let chunk = handle.availableData  // blocks: on a thread of its own
                if chunk.isEmpty { throw TestFailure("the process ended before '\(marker)': \(output)") }
                output += String(decoding: chunk, as: UTF8.self)
            }
            return output
        }
    }

    @Test func ktDaemonSurvivesAServerRestart() async throws {
        let work = try temporaryDirectory("restart")
        let data = work + "/data"
        let store = try ServerStore(directory: data, dataModel: try shippedDataModel())
        try store.accounts.ensureUser("office", role: .backOffice, scopes: ["*"])
        let tokens = try ["a", "b"].map { try store.accounts.addDevice(name: $0, user: "office").token }
        let (first, url) = try await CommandLineTests().startServer(data: data, in: work)
        let port = Int(url.split(separator: ":").last!)!
        let model = store.dataModel
        let a = try Replica.create(path: work + "/a.sqlite", dataModel: model, serverURL: url, token: tokens[0])
        let b = try Replica.create(path: work + "/b.sqlite", dataModel: model, serverURL: url, token: tokens[1])
        let daemon = Process()
        daemon.executableURL = CommandLineTests.binDirectory.appendingPathComponent("kt")
        daemon.arguments = ["daemon", "--db", b.path, "--poll", "1", "--max-backoff", "1"]
        let out = Pipe()
        daemon.standardOutput = out
        daemon.standardError = FileHandle.nullDevice
        try daemon.run()
        defer { if daemon.isRunning { daemon.terminate() } }
        var log = try await Self.readUntil("syncing", from: out.fileHandleForReading)

        // The server goes away: the daemon reports failures and keeps trying.
        _ = try await onThread { first.terminate(); first.waitUntilExit(); return true }
        log = try await Self.readUntil("sync failed", from: out.fileHandleForReading, after: log)
        #expect(log.contains("retrying in"))

        // Back on the same port, a write on A reaches B without anyone touching B.
        let (second, _) = try await CommandLineTests().startServer(data: data, in: work, port: port)
        defer { second.terminate() }
        let (_, caseID) = try seedCase(on: a, name: "Na de herstart")
        try await a.sync()
        log = try await Self.readUntil("pulled", from: out.fileHandleForReading, after: log)
        #expect(log.contains("the server answers again, after"), "the end of the outage is said")
        #expect(try Replica(path: b.path).value("cases", caseID, "team") == .text("castricum-noord"))
        let status = try await onThread { daemon.terminate(); daemon.waitUntilExit(); return daemon.terminationStatus }
        #expect(status == 0)
    }
}

@Suite struct MetricsTests {
    @Test func metricsAreScrapedAndParsed() async throws {
        let server = try await TestServer.start()
        let laptop = try server.replica("laptop")
        let (_, caseID) = try seedCase(on: laptop)
        try await laptop.sync()
        let office = try server.replica("office")
        try await office.sync()
        try await laptop.execute("UPDATE cases SET status = 'plan' WHERE id = ?", [.text(caseID)])
        try await office.execute("UPDATE cases SET status = 'onderzoek' WHERE id = ?", [.text(caseID)])
        try await laptop.sync()
        try await office.sync()

        let exchange = try await onThread { try CurlTransport(baseURL: server.metricsURL, token: "").send(method: "GET", path: "/metrics", query: [], body: nil) }
        #expect(exchange.status == 200)
        let onTheDeviceAPI = try await onThread { try CurlTransport(baseURL: server.url, token: "").send(method: "GET", path: "/metrics", query: [], body: nil) }
        #expect(onTheDeviceAPI.status == 404, "not next to the devices' API")
        // Parse the text exposition: `name{labels} value` lines, `#` lines are help and type.
        var samples: [String: Double] = [:]
        for line in String(decoding: exchange.body, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let value = Double(parts[1]) else { Issue.record("unparsable line: \(line)"); continue }
            samples[String(parts[0])] = value
        }
        let cells = Double(try server.store.inspection.counts()["changes"] ?? 0)
        #expect(samples[#"kt_changes_total{status="applied"}"#] == cells - 1)
        #expect(samples[#"kt_changes_total{status="conflict"}"#] == 1)
        #expect((samples[#"kt_http_requests_total{route="/v1/push",status="200"}"#] ?? 0) >= 3)
        #expect((samples[#"kt_http_requests_total{route="/v1/pull",status="200"}"#] ?? 0) >= 3)
        #expect((samples["kt_push_duration_seconds_count"] ?? 0) >= 3)
        #expect((samples["kt_store_bytes"] ?? 0) > 0)
        #expect(samples["kt_longpolls_waiting"] == 0)
        #expect(samples[#"kt_build_info{version="\#(ServerMetrics.version)",protocol="1"}"#] == 1, "\(samples.keys.filter { $0.hasPrefix("kt_build") })")
        await server.stop()
    }
}
