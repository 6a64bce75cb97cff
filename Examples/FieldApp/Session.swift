import Foundation
import KeukentafelClient
import KeukentafelProtocol

/// A case as the list and the case screen show it (a typed record: columns by coding key).
struct CaseRecord: Decodable, Sendable {
    var id: String
    var status: String?
    var team: String
    var question: String?
    var resident: String?
}

struct NoteRecord: Decodable, Sendable {
    var author: String?
    var body: String?
}

/// One run of the app: the sync, the status line, the list of cases and the open case.
final class Session: @unchecked Sendable {
    let replica: Replica
    let screen: Screen
    private let lock = NSLock()
    private var listed: [CaseRecord] = []
    private var openCase: String?
    private var caseWatch: Task<Void, Never>?

    init(replica: Replica, screen: Screen) {
        self.replica = replica
        self.screen = screen
    }

    func run(pollSeconds: Int) async throws {
        let engine = try SyncEngine(replica: replica)
        let statusLine = Task { [screen] in
            for await status in engine.statusUpdates() { await screen.status(Self.describe(status)) }
        }
        let refusals = Task { [screen] in
            for await refused in engine.refusedChanges() {
                await screen.show(["[sync] the server refused \(refused.table).\(refused.column): \(refused.code), \(refused.message)"])
            }
        }
        engine.connect(pollSeconds: pollSeconds)
        await screen.show(["kt-field: \(replica.path) — type cases, open N, note TEXT, status or quit"])

        for await line in Self.inputLines() {
            let command = line.trimmingCharacters(in: .whitespaces)
            if command == "quit" { break }
            do {
                try await handle(command, engine: engine)
            } catch {
                await screen.show(["error: \(error)"])
            }
        }
        caseWatch?.cancel()
        await engine.disconnect()
        await screen.status(Self.describe(engine.currentStatus))
        statusLine.cancel()
        refusals.cancel()
        await screen.show(["bye"])
    }

    private func handle(_ command: String, engine: SyncEngine) async throws {
        let (verb, rest) = command.firstIndex(of: " ").map { (String(command[..<$0]), String(command[$0...].dropFirst())) } ?? (command, "")
        switch verb {
        case "":
            return
        case "cases":
            let cases = try await replica.fetch(CaseRecord.self, Self.caseQuery + " WHERE c.status IS NOT 'gesloten' ORDER BY r.last_name, c.id")
            lock.withLock { listed = cases }
            await screen.show(cases.isEmpty ? ["No open cases on this device."]
                : ["My cases:"] + cases.enumerated().map { "  \($0.offset + 1). \($0.element.resident ?? "?") — \($0.element.status ?? "-") (\($0.element.team))" })
        case "open":
            guard !rest.isEmpty else { throw FieldAppError("open which case? type cases, then open N") }
            var chosen = rest
            if let number = Int(rest) {
                let ids = lock.withLock { listed.map(\.id) }
                guard (1...max(1, ids.count)).contains(number), !ids.isEmpty else {
                    throw FieldAppError(ids.isEmpty ? "no list yet: type cases first" : "there is no case \(number) in the list (1-\(ids.count))")
                }
                chosen = ids[number - 1]
            }
            // Opening a case is viewing a resident's file: recorded, offline too (decision 0030).
            try replica.recordView(table: "cases", row: chosen, purpose: "kt-field: case opened")
            try watch(caseID: chosen)
        case "note":
            guard let caseID = lock.withLock({ openCase }) else { throw FieldAppError("open a case first") }
            guard !rest.isEmpty else { throw FieldAppError("note needs a text: note Gesprek aan de keukentafel") }
            let author = (try? replica.identity?.user) ?? nil
            try await replica.execute("INSERT INTO notes (id, case_id, written_at, author, body) VALUES (kt_new_id(), ?, ?, ?, ?)",
                                      [.text(caseID), .text(ISO8601DateFormatter().string(from: Date())), author.map { .text($0) } ?? .null, .text(rest)])
            await screen.show(["note saved on this device"])
        case "status":
            await screen.show(["[sync] " + Self.describe(engine.currentStatus)])
        default:
            throw FieldAppError("unknown command '\(verb)': type cases, open N, note TEXT, status or quit")
        }
    }

    /// Shows one case and its notes, and shows them again whenever they change: a colleague's edit
    /// pulled by the sync, a note typed here, a row that left the device.
    private func watch(caseID: String) throws {
        let details = try replica.observe(Self.caseQuery + " WHERE c.id = ?", [.text(caseID)])
        let notes = try replica.observe("SELECT author, body FROM notes WHERE case_id = ? ORDER BY written_at, id", [.text(caseID)])
        caseWatch?.cancel()
        lock.withLock { openCase = caseID }
        caseWatch = Task { [screen] in
            // Both streams feed one view: whichever changes, the case screen is drawn again.
            await withTaskGroup(of: Void.self) { group in
                let view = CaseView()
                group.addTask {
                    do {
                        for try await result in details {
                            let record = try result.decode(CaseRecord.self).first
                            await screen.show(await view.update(case: record, notes: nil))
                        }
                    } catch {}
                }
                group.addTask {
                    do {
                        for try await result in notes {
                            let notes = try result.decode(NoteRecord.self)
                            await screen.show(await view.update(case: nil, notes: notes))
                        }
                    } catch {}
                }
            }
        }
    }

    static let caseQuery = "SELECT c.id, c.status, c.team, c.question, r.last_name AS resident FROM cases c LEFT JOIN residents r ON r.id = c.resident_id"

    static func describe(_ status: SyncStatus) -> String {
        var parts: [String] = [status.connection.rawValue]
        if status.downloading { parts.append("downloading \(status.cellsDownloaded) of about \(status.cellsExpected ?? 0)") }
        // A change is one cell: a new note of four columns is four changes.
        parts.append(status.uploading ? "sending \(status.pendingChanges) changes" : "\(status.pendingChanges) changes waiting")
        if !status.hasSynced { parts.append("not fully downloaded yet") }
        if let error = status.lastError { parts.append("\(error.code): \(error.message)") }
        return parts.joined(separator: " · ")
    }

    /// Standard input, line by line (read on a thread of its own: reading blocks).
    static func inputLines() -> AsyncStream<String> {
        AsyncStream { continuation in
            Thread {
                while let line = readLine() { continuation.yield(line) }
                continuation.finish()
            }.start()
        }
    }
}

/// The case screen, drawn from the last case row and notes seen.
actor CaseView {
    private var current: CaseRecord?
    private var notes: [NoteRecord] = []

    func update(case record: CaseRecord?, notes newNotes: [NoteRecord]?) -> [String] {
        if let record { current = record }
        if let newNotes { notes = newNotes }
        guard let current else { return ["(this case is not on this device)"] }
        var lines = ["── case \(current.id) ──", "resident: \(current.resident ?? "?")", "status: \(current.status ?? "-")  team: \(current.team)"]
        if let question = current.question { lines.append("question: \(question)") }
        lines.append(notes.isEmpty ? "notes: none" : "notes:")
        lines += notes.map { "  - \($0.body ?? "")\($0.author.map { " (\($0))" } ?? "")" }
        return lines
    }
}

struct FieldAppError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
