import ArgumentParser
import Foundation
import KeukentafelClient
import KeukentafelProtocol
import KeukentafelTerminal

@main
struct KT: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kt",
        abstract: "Keukentafel on a device: a local replica that works offline and syncs with the office.",
        discussion: """
            First time on a device (the office gives you the server address and a token):
              kt init --db laptop.sqlite --server http://127.0.0.1:8470 --token kt_…
            Work offline with plain SQL; every write is captured and synced later:
              kt sql --db laptop.sqlite "UPDATE cases SET status = 'plan' WHERE id = '…'"
            Sync when there is a network, and see what happened:
              kt sync --db laptop.sqlite
              kt status --db laptop.sqlite
            Attach a photo or scan to a row (uploaded by the next sync):
              kt attach documents ROW_ID file brief.jpg --db laptop.sqlite
            """,
        version: "0.1.0",
        subcommands: [Init.self, Login.self, SQL.self, Sync.self, Status.self, Conflicts.self, History.self, Upgrade.self, Due.self, Report.self, Daemon.self,
                      Attach.self, Attachments.self, ChangePassphrase.self])
}
