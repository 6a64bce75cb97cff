import ArgumentParser
import Foundation
import KeukentafelClient
import KeukentafelProtocol
import KeukentafelTerminal

// Syncing once (`kt sync`) and continuously (`kt daemon`).
struct Sync: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Push local writes, then pull what changed on the server.",
        discussion: "Exits non-zero with the reason when the server cannot be reached or refuses; nothing local is lost then.")

    @OptionGroup var options: ReplicaOptions
    @Option(name: .long, help: ArgumentHelp("Extra CA certificates (PEM) to trust (default: the one given to kt init).", valueName: "file")) var caBundle: String?

    func run() throws {
        let replica = try options.open()
        let report: SyncReport
        do {
            let engine = try SyncEngine(replica: replica, caBundlePath: caBundle)
            if !options.json {
                engine.onPage = Progress.reporter(for: engine)
                engine.onTransfer = TransferBar.reporter(terminal: isatty(STDERR_FILENO) == 1)
            }
            report = try engine.sync()
            Progress.finish()
        } catch {
            Progress.finish()
            if options.json { try Terminal.printJSON(["error": "\(error)"]) } else { Terminal.printError("sync failed: \(error)") }
            throw ExitCode(2)
        }
        if options.json { return try Terminal.printJSON(report) }
        let p = report.pushed
        print("pushed \(p.total): \(p.applied) applied, \(p.superseded) superseded, \(p.conflicts) in conflict, \(p.rejected) rejected")
        let pulled = report.pulled
        print("pulled \(pulled.cellsReceived) cells in \(report.pages) page(s): \(pulled.cellsApplied) applied,",
              "\(pulled.rowsDeleted) rows deleted, \(pulled.conflicts) conflict record\(pulled.conflicts == 1 ? "" : "s"); cursor \(report.cursor)")
        // Rows that left the device are said in words, as `kt daemon` says them: a consultant must know
        // why a case is no longer on her laptop.
        if pulled.rowsEvicted > 0 {
            print("\(pulled.rowsEvicted) row(s) left this device: they are no longer in its scopes (e.g. a case moved to another team)")
        }
        if pulled.rowsPurged > 0 { print("\(pulled.rowsPurged) row(s) of an erased person removed from this device") }
        if pulled.changesRequeued > 0 {
            print("\(pulled.changesRequeued) change(s) of this device queued again after the server's store was restored")
        }
        if report.restamped > 0 { print("\(report.restamped) change(s) refused earlier for a wrong clock were re-stamped and sent") }
        if report.viewsSent > 0 {
            print("sent \(report.viewsSent) recorded view(s) of residents' records"
                  + (report.viewsFlagged > 0 ? "; the server flagged \(report.viewsFlagged) as altered on this device or following missing ones" : ""))
        }
        if report.attachmentsUploaded > 0 {
            print("uploaded \(report.attachmentsUploaded) attachment(s), \(byteCount(report.attachmentBytesUploaded))")
        }
        if report.attachmentsDownloaded > 0 {
            print("downloaded \(report.attachmentsDownloaded) attachment(s), \(byteCount(report.attachmentBytesDownloaded))")
        }
        if report.attachmentsNotAvailable > 0 {
            print("\(report.attachmentsNotAvailable) attachment(s) not served by the server (no longer visible to this device)")
        }
        if report.attachmentsRemoved > 0 { print("\(report.attachmentsRemoved) attachment file(s) no row refers to any more were deleted from this device") }
        if p.purged > 0 { print("\(p.purged) local row(s) removed: they were written about a person erased from the server meanwhile") }
        if report.resolutionsRefused > 0 {
            print("\(report.resolutionsRefused) conflict decision(s) refused by the server: see `kt status --db \(options.db)`")
        }
        if report.stillRejected > 0 { print("\(report.stillRejected) local change(s) refused by the server: see `kt status --db \(options.db)`") }
        if let newer = report.serverSchemaVersion, newer > replica.dataModel.version {
            print("the server runs data model v\(newer); this replica has v\(replica.dataModel.version): run `kt upgrade --db \(options.db)`")
        }
    }
}

struct Daemon: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Keep the replica in sync continuously until stopped (SIGTERM or Ctrl-C).",
        discussion: """
            Long-polls the server, so a colleague's change arrives as soon as it is committed, and pushes
            a local write as soon as it is committed, also one made by another program (kt sql, the
            field app) on the same file. While the server is unreachable it retries with growing,
            jittered pauses. Logs one line per event (JSON lines with --json).
              kt daemon --db office.sqlite
            """)
    @OptionGroup var options: ReplicaOptions
    @Option(help: "Seconds one long-poll waits for news before it asks again (the server allows up to 30); local writes do not wait for it.") var poll = 25
    @Option(help: "The longest pause between retries while the server is unreachable, in seconds.") var maxBackoff: Double = 60
    @Option(name: .long, help: ArgumentHelp("Extra CA certificates (PEM) to trust (default: the one given to kt init).", valueName: "file")) var caBundle: String?

    func run() throws {
        let daemon = SyncDaemon(engine: try SyncEngine(replica: try options.open(), caBundlePath: caBundle), pollSeconds: poll)
        daemon.maximumBackoffSeconds = max(1, maxBackoff)
        for signalNumber in [SIGTERM, SIGINT] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { daemon.stop() }
            source.resume()
            DaemonSignals.sources.append(source)
        }
        let json = options.json
        print(json ? #"{"event":"started"}"# : "kt daemon: syncing \(options.db) (poll \(poll) s)")
        fflush(nil)
        daemon.run { event in
            let stamp = ISO8601DateFormatter().string(from: Date())
            if json {
                print(#"{"time":"\#(stamp)","event":"\#(event.description.replacingOccurrences(of: "\"", with: "'"))"}"#)
            } else {
                print("\(stamp) \(event)")
            }
            fflush(nil)
        }
    }
}

/// Keeps the signal sources alive for the life of the process.
enum DaemonSignals {
    nonisolated(unsafe) static var sources: [any DispatchSourceSignal] = []
}
