import ArgumentParser
import Foundation
import KeukentafelProtocol
import KeukentafelTerminal
import KeukentafelServer
import Logging

@main
struct KTD: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ktd",
        abstract: "The Keukentafel sync server: merges the changes of field laptops and the office, keeps every conflict.",
        discussion: """
            Start a server on an embedded SQLite store (created on first start):
              ktd serve --data /var/lib/keukentafel --listen 127.0.0.1:8470
            Register a device and print its token (shown once):
              ktd admin device add "laptop Fatima" --data /var/lib/keukentafel
            """,
        version: ServerMetrics.version,
        subcommands: [Serve.self, Admin.self])
}

struct Admin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Administer users, scopes and devices, inspect conflicts, audit and erase, in the server store.",
        subcommands: [InitCommand.self, UserCommand.self, ScopeCommand.self, DeviceCommand.self, ConflictsCommand.self, HistoryCommand.self, PruneHistoryCommand.self,
                      AuditCommand.self, EraseCommand.self, AttachmentsCommand.self, Demo.self, Backup.self, Restore.self])
}
