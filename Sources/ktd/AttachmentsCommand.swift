import ArgumentParser
import Foundation
import KeukentafelServer
import KeukentafelTerminal

struct AttachmentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attachments",
        abstract: "What the store holds of attachments: sizes, orphans, missing content, unfinished uploads.",
        discussion: """
            Attachment content (photos, scans, signed documents) is stored once per SHA-256, in the store itself.
              ktd admin attachments                   # totals, orphans, missing, unfinished
              ktd admin attachments --list            # every content, its size, its rows
              ktd admin attachments --remove-orphans  # orphans, uploads unfinished for 7 days

            An orphan is content no current row refers to (a file replaced by another, its row deleted); \
            old history entries may still name it. An erasure removes a resident's content itself.
            """)
    @OptionGroup var store: StoreOptions
    @Flag(help: "List every stored content.") var list = false
    @Flag(help: "Remove orphaned content and uploads unfinished for --stale-days.") var removeOrphans = false
    @Option(help: ArgumentHelp("With --remove-orphans: uploads unfinished for this many days go too.", valueName: "days")) var staleDays = 7
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let opened = try store.openStore()
        if removeOrphans {
            let removed = try opened.attachments.removeOrphans(staleDays: staleDays, actor: adminActor())
            if json { return try Terminal.printJSON(["contents": Int64(removed.contents), "bytes": removed.bytes, "uploads": Int64(removed.uploads)]) }
            print("Removed \(removed.contents) orphaned content(s), \(removed.bytes) bytes, and \(removed.uploads) upload(s) unfinished for "
                  + "more than \(staleDays) days. Noted in the audit trail.")
            return
        }
        let summary = try opened.attachments.summary()
        if json { return try Terminal.printJSON(summary) }
        print("\(summary.stored.count) attachment content(s), \(summary.totalBytes) bytes in all")
        print("\(summary.orphans.count) orphan(s) (no current row refers to them): \(summary.orphans.reduce(0) { $0 + $1.size }) bytes")
        print("\(summary.missing.count) missing (rows refer to content the store lacks)")
        for sha in summary.missing { print("  missing \(sha)") }
        print("\(summary.unfinished.count) unfinished upload(s)")
        for upload in summary.unfinished {
            print("  \(upload.sha256.prefix(12))…  device \(upload.device)  \(upload.received) of \(upload.size) bytes  since \(upload.startedAt)")
        }
        if list {
            for content in summary.stored {
                print("\(content.sha256)  \(content.size) bytes  \(content.references) row(s)  stored \(content.storedAt)")
            }
        }
    }
}
