import Foundation
import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelTesting
import Testing

/// The example field app (`Examples/FieldApp`, issue 18 item 8), driven through its standard input as
/// a consultant would type, against a real server behind a proxy that can take the network away.
@Suite struct FieldAppTests {
    @Test("kt-field: my cases, a case that updates while the office edits it, a note written offline, the status line")
    func aConsultantsSession() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let office = try server.replica("office")
        let (_, caseID) = try seedCase(on: office, name: "De Vries")
        _ = try seedCase(on: office, name: "Jansen", team: "heiloo")  // another team's case: not on the laptop
        try await office.sync()
        let proxy = try FaultProxy(upstreamPort: server.port)
        defer { proxy.stop() }
        let token = try server.token("laptop fatima", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        let path = try temporaryDirectory("field") + "/laptop.sqlite"

        let app = try AppProcess(["--db", path, "--server", "http://127.0.0.1:\(proxy.port)", "--token", token])
        defer { app.stop() }
        try await app.read(until: "[sync] connected · 0 changes waiting")

        app.type("cases")
        let list = try await app.read(until: "1. De Vries — melding (castricum-noord)")
        #expect(!list.contains("Jansen"), "only what this device may see")
        app.type("open 1")
        try await app.read(until: "status: melding")
        try await app.read(until: "notes: none")

        // The office edits the case; the open case shows it without a command.
        try await office.execute("UPDATE cases SET status = 'onderzoek' WHERE id = ?", [.text(caseID)])
        try await office.sync()
        try await app.read(until: "status: onderzoek")

        // No network: the note is saved and shown at once, and waits.
        proxy.fault = .refuse
        app.type("note Gesprek aan de keukentafel, dochter aanwezig")
        // The command's answer and the case drawn again come in either order.
        try await app.read(untilAll: ["note saved on this device", "  - Gesprek aan de keukentafel, dochter aanwezig (fatima)"])
        try await app.read(until: "[sync] offline · 4 changes waiting · unreachable")  // the note's four cells

        // The network is back: the note goes out by itself, and the office has it.
        proxy.fault = .none
        try await app.read(until: "[sync] connected · 0 changes waiting")
        try await office.sync()
        let notes = try await office.query("SELECT body, author FROM notes WHERE case_id = ?", [.text(caseID)]).rows
        #expect(notes == [[.text("Gesprek aan de keukentafel, dochter aanwezig"), .text("fatima")]])

        // Bad input gets a clear answer; quit stops syncing and leaves.
        app.type("open")
        try await app.read(until: "error: open which case?")
        app.type("open 7")
        try await app.read(until: "error: there is no case 7 in the list (1-1)")
        app.type("frobnicate")
        try await app.read(until: "error: unknown command 'frobnicate'")
        app.type("quit")
        try await app.read(until: "bye")
        #expect(try await app.exitStatus() == 0)
    }
}

/// The app as a child process: what it printed so far, and a way to type a line.
final class AppProcess: @unchecked Sendable {
    private let process = Process()
    private let input = Pipe(), output = Pipe()
    private let lock = NSLock()
    private var bytes = Data()
    /// How many characters of the output a `read(until:)` went past.
    private var consumed = 0

    init(_ arguments: [String]) throws {
        process.executableURL = CommandLineTests.binDirectory.appendingPathComponent("kt-field")
        process.arguments = arguments
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        // If the app hangs, end it after two minutes so the test fails instead of hanging too.
        let process = self.process
        DispatchQueue.global().asyncAfter(deadline: .now() + 120) { if process.isRunning { process.terminate() } }
    }

    func type(_ line: String) {
        input.fileHandleForWriting.write(Data((line + "\n").utf8))
    }

    /// Reads until `marker` appears in output not read past before; returns that output.
    @discardableResult
    func read(until marker: String) async throws -> String {
        try await read(untilAll: [marker])
    }

    /// Reads until every one of `markers` appears, in any order, in output not read past before.
    @discardableResult
    func read(untilAll markers: [String]) async throws -> String {
        try await onThread { [self] in
            while true {
                let found = lock.withLock { () -> String? in
                    // Decoded whole each time: a chunk may end inside a character such as "—".
                    let text = String(decoding: bytes, as: UTF8.self)
                    let unread = text.index(text.startIndex, offsetBy: consumed)
                    let ranges = markers.compactMap { text[unread...].range(of: $0) }
                    guard ranges.count == markers.count, let end = ranges.map(\.upperBound).max() else { return nil }
                    consumed = text.distance(from: text.startIndex, to: end)
                    return String(text[unread..<end])
                }
                if let found { return found }
                let chunk = output.fileHandleForReading.availableData  // blocks: on a thread of its own
                if chunk.isEmpty {
                    throw TestFailure("kt-field ended before printing \(markers). It printed:\n\(lock.withLock { String(decoding: bytes, as: UTF8.self) })")
                }
                lock.withLock { bytes += chunk }
            }
        }
    }

    func exitStatus() async throws -> Int32 {
        try await onThread { [process] in
            process.waitUntilExit()
            return process.terminationStatus
        }
    }

    func stop() { if process.isRunning { process.terminate() } }
}
