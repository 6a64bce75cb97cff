import ArgumentParser
import Foundation
import KeukentafelProtocol
import KeukentafelTerminal
import KeukentafelServer
import Logging

// Online backup of the SQLite store and restoring one (`ktd admin backup`, `ktd admin restore`).
struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Take a consistent online backup of the store while the server runs.",
        discussion: """
            Uses SQLite's online backup: the server keeps serving. Shows a progress bar on a terminal and \
            a line per 10 % otherwise. The file gets mode 0600: it holds every resident's data, attachments \
            included. An existing file is not replaced unless --force.
              ktd admin backup /var/backups/kt-$(date +%F).sqlite --data /var/lib/keukentafel

            Encrypted (AES-256-GCM) with a key you keep apart from the backups, e.g. for a copy off the server:
              head -c 32 /dev/urandom > /etc/keukentafel/backup.key
              chmod 600 /etc/keukentafel/backup.key
              ktd admin backup /mnt/offsite/kt-$(date +%F).ktbackup --key-file /etc/keukentafel/backup.key
            `ktd admin restore` needs the same key file; without it nobody can read an encrypted backup. \
            Check a plain backup with `sqlite3 FILE 'PRAGMA integrity_check'`.
            """)
    @OptionGroup var store: StoreOptions
    @Argument(help: "The backup file to write.") var file: String
    @Option(help: ArgumentHelp("Encrypt the backup with the 32-byte key in this file.", valueName: "file")) var keyFile: String?
    @Flag(help: "Replace the file if it exists.") var force = false
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let serverStore = try store.openStore()
        let key = try keyFile.map { try BackupKey(file: $0) }
        let start = Date()
        var lastDecile = -1
        let terminal = Terminal.colours
        try serverStore.backups.backup(to: file, key: key, replace: force) { done, total in
            guard total > 0, !json else { return }
            if terminal {
                let width = 40, filled = width * done / total
                FileHandle.standardError.write(Data("\r[\(String(repeating: "#", count: filled))\(String(repeating: " ", count: width - filled))] \(100 * done / total)%".utf8))
            } else if 10 * done / total > lastDecile {
                lastDecile = 10 * done / total
                print("backup: \(100 * done / total)% (\(done) of \(total) pages)")
            }
        }
        if terminal && !json { FileHandle.standardError.write(Data("\n".utf8)) }
        let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
        try serverStore.audit.record(actor: adminActor(), action: "backup", subject: file, detail: "\(size) bytes\(key == nil ? "" : ", encrypted")")
        if json { return try Terminal.printJSON(["file": file, "bytes": String(size), "milliseconds": String(Int(Date().timeIntervalSince(start) * 1000))]) }
        print("\(key == nil ? "Backup" : "Encrypted backup") written to \(file) (\(size / 1024) KiB, mode 0600) in "
              + "\(String(format: "%.1f", Date().timeIntervalSince(start))) s.")
    }
}

struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Put the store back to a backup, while the server runs; devices recover by themselves.",
        discussion: """
            Copies the backup into the store with SQLite's online backup (the server keeps running and
            sees the restored state from its next request) and gives the feed a new epoch. Every device
            then starts its feed over on its next sync, keeps its unsent writes, and sends again its own
            writes that the backup lacks — so what devices had delivered after the backup comes back.
            Rows erased after the backup are erased again. Writes made only on the server after the
            backup (ktd admin demo, office resolutions) are not recovered.
              ktd admin restore /var/backups/keukentafel-2026-11-22.sqlite --data /var/lib/keukentafel --yes
            An encrypted backup needs the key file it was made with (--key-file).
            """)
    @OptionGroup var store: StoreOptions
    @Argument(help: "A backup written by `ktd admin backup`.") var file: String
    @Option(help: ArgumentHelp("The key file of an encrypted backup.", valueName: "file")) var keyFile: String?
    @Flag(help: "Confirm: the store's current state is replaced.") var yes = false
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        guard yes else {
            throw ValidationError("this replaces the store in \(store.data) by \(file); run again with --yes to go ahead")
        }
        let key = try keyFile.map { try BackupKey(file: $0) }
        let restored = try store.openStore(creating: true).backups.restore(from: file, key: key, actor: adminActor())
        if json {
            return try Terminal.printJSON(["file": file, "sequence": String(restored.sequence), "epoch": restored.epoch,
                                           "erasedAgain": String(restored.erasedAgain)])
        }
        print("Store restored from \(file) (feed at sequence \(restored.sequence), new epoch \(restored.epoch)).")
        if restored.erasedAgain > 0 { print("\(restored.erasedAgain) rows erased since the backup were erased again.") }
        print("Devices recover on their next sync: they start over and send their own newer writes again.")
    }
}
