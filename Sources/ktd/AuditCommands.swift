import ArgumentParser
import Foundation
import KeukentafelServer
import KeukentafelTerminal

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Answer who changed, received and viewed a resident's data, or list administrative actions.",
        discussion: """
            With --resident: every row of the resident's data (their cases and what hangs off them, their \
            care relations, consents, help requests, volunteer or carer record), who changed them (user, \
            device, how many cells, first and last time), which devices received them (first and last \
            pull) and hold them now, and who viewed them: each view an app or kt recorded (user, device, \
            when, offline or online, purpose), flagged when the device's log was altered or has entries \
            missing. Without: the administrative actions (users, scopes, devices, conflict decisions, \
            backups, erasures, flagged view logs), newest first.
              ktd admin audit --resident a0000000-0000-4000-8000-000000000005
            """)
    @OptionGroup var store: StoreOptions
    @Option(help: "The id of a resident (residents.id).") var resident: String?
    @Option(help: "At most this many administrative actions.") var limit = 50
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let serverStore = try store.openStore()
        guard let resident else {
            let entries = try serverStore.audit.entries(limit: limit)
            if json { return try Terminal.printJSON(entries) }
            return Terminal.printTable(["WHEN", "WHO", "ACTION", "SUBJECT", "DETAIL"], entries.map {
                [$0.at, $0.actor, $0.action, $0.subject ?? "", Terminal.shorten($0.detail ?? "", to: 60)]
            })
        }
        let answer: ResidentAudit
        do {
            answer = try serverStore.audit.resident( resident)
        } catch AdminError.notFound(let why) {
            if let erasure = try serverStore.erasure.find(resident: resident) {
                if json { return try Terminal.printJSON(erasure) }
                print("Resident \(resident) was erased at \(erasure.at) by \(erasure.actor): \(erasure.detail ?? "").")
                let waiting = try serverStore.deletionReceipts.unconfirmedErasure(subject: erasure.subject ?? "")
                print(waiting.isEmpty ? "Every device that held the data has confirmed deleting it."
                      : "Not yet confirmed deleted by: \(waiting.joined(separator: ", ")) (they do on their next sync).")
                return
            }
            throw ValidationError(why)
        }
        if json { return try Terminal.printJSON(answer) }
        let tables = Dictionary(grouping: answer.rows, by: \.table).map { "\($0.value.count) \($0.key)" }.sorted()
        print("Resident \(resident): \(answer.rows.count) rows (\(tables.joined(separator: ", "))).\n")
        print("Changed by:")
        Terminal.printTable(["USER", "DEVICE", "TABLE", "ROWS", "CELLS", "FIRST", "LAST"], answer.changes.map {
            [$0.user, $0.device, $0.table, String($0.rows), String($0.cells), $0.first, $0.last]
        })
        print("\nReceived by:")
        Terminal.printTable(["USER", "DEVICE", "TABLE", "ROWS", "FIRST", "LAST"], answer.receipts.map {
            [$0.user, $0.device, $0.table, String($0.rows), $0.first, $0.last]
        }, empty: "(no device received these rows)")
        print("\nHeld now by (received, and not confirmed deleted):")
        Terminal.printTable(["USER", "DEVICE", "ROWS", "SINCE", "TOLD TO DELETE"], answer.holders.map {
            [$0.user, $0.device, String($0.rows), $0.since, $0.toDelete == 0 ? "" : "\($0.toDelete) rows, not yet synced"]
        }, empty: "(no device holds these rows)")
        print("\nViewed by (as the devices recorded it; offline: sent with a later sync):")
        Terminal.printTable(["USER", "DEVICE", "TABLE", "WHEN", "", "PURPOSE", "CHECK"], answer.views.map {
            [$0.user, $0.device, $0.table, $0.at, $0.offline ? "offline" : "online", Terminal.shorten($0.purpose, to: 40),
             $0.finding == "ok" ? "ok" : Terminal.paint($0.finding == "gap" ? "entries missing before it" : "altered on the device", .red)]
        }, empty: "(no recorded views)")
    }
}

struct EraseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "erase",
        abstract: "Erase a resident and everything about them (AVG art. 17).",
        discussion: """
            Removes the resident and every row of their data (see `ktd admin audit --resident`) from the
            store: current state, history, conflict records, delivery records and audit entries naming
            them. Keeps only the fact of the erasure (by whom, when, how many rows). The file is rebuilt
            so no old page holds the data; every device deletes the rows on its next sync. Cannot be
            undone: backups taken before still hold the data (expire them by your retention policy).
              ktd admin erase resident a0000000-0000-4000-8000-000000000005 --yes
            """)
    @OptionGroup var store: StoreOptions
    @Argument(help: "What to erase: resident.") var kind: String
    @Argument(help: "The resident's id.") var id: String
    @Flag(help: "Confirm: without it, only show what would be erased.") var yes = false
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard kind == "resident" else { throw ValidationError("only residents can be erased: ktd admin erase resident ID") }
    }

    func run() async throws {
        let serverStore = try store.openStore()
        guard yes else {
            let rows = try serverStore.erasure.rowsOfResident(id)
            if json { return try Terminal.printJSON(rows) }
            print("Would erase \(rows.count) rows:")
            Terminal.printTable(["TABLE", "ROW"], rows.map { [$0.table, $0.row] })
            print("\nRun again with --yes to erase them.")
            return
        }
        let report = try serverStore.erasure.eraseResident(id, actor: adminActor())
        if json { return try Terminal.printJSON(report) }
        let tables = report.rowsByTable.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        print("Erased \(report.rows) rows (\(tables)): \(report.cells) cells, \(report.historyEntries) history entries, "
              + "\(report.conflicts) conflict records, \(report.attachments) attachment(s). Store \(report.bytesBefore / 1024) KiB → \(report.bytesAfter / 1024) KiB.")
        if report.devicesToConfirm.isEmpty {
            print("No device held these rows.")
        } else {
            print("Devices that held them delete them on their next sync; not yet confirmed by: \(report.devicesToConfirm.joined(separator: ", ")).")
            print("`ktd admin audit --resident \(id)` and `ktd admin device unconfirmed` say when they have.")
        }
    }
}
