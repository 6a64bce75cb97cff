import ArgumentParser
import Foundation
import KeukentafelClient
import KeukentafelProtocol

/// A small field app for a consultant, built only on the public API of `KeukentafelClient`: my cases,
/// one case that stays right while colleagues edit it, a note added offline, and a status line.
/// It reads commands line by line, from a person at a terminal or from a script.
@main
struct FieldApp: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kt-field",
        abstract: "An example field app on the Keukentafel client library.",
        discussion: """
            Opens a replica made by `kt init` (or connects a new one with --server and --token), keeps
            it in sync while it runs, and takes commands on standard input:
              cases             my open cases
              open N            show case N of the list (or a case id); it updates by itself
              note TEXT         add a note to the open case (works offline; sent when the network is back)
              status            the sync status
              quit              stop syncing and leave
            """)

    @Option(help: "The replica file.") var db: String
    @Option(help: "Connect a new replica to this server first (with --token).") var server: String?
    @Option(help: "The device token for --server.") var token: String?
    @Option(help: "Seconds one long-poll waits for news.") var poll = 25

    func run() async throws {
        let replica: Replica
        // An encrypted replica (what `kt init` makes) opens with its passphrase; this example reads it
        // from KT_PASSPHRASE, a real app asks the user.
        let passphrase = ProcessInfo.processInfo.environment["KT_PASSPHRASE"]
        if let server {
            guard let token else { throw ValidationError("--server needs --token") }
            replica = try Replica.connect(path: db, serverURL: server, token: token, encryption: passphrase.map { .passphrase($0) } ?? .none)
        } else {
            guard FileManager.default.fileExists(atPath: db) else {
                throw ValidationError("no replica at \(db): make one with kt init, or pass --server and --token")
            }
            replica = try Replica(path: db, passphrase: passphrase)
        }
        let screen = Screen()
        let session = Session(replica: replica, screen: screen)
        try await session.run(pollSeconds: poll)
    }
}
