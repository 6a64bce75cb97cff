import ArgumentParser
import Foundation
import KeukentafelClient
import KeukentafelProtocol
import KeukentafelTerminal

// Reading records: the history of a cell (`kt history`) and deadlines (`kt due`).
struct History: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Every value a record (or one cell) had: who, which device, when. Asks the server.",
        discussion: "  kt history cases c0000000-0000-4000-8000-000000000005 status --db laptop.sqlite")
    @OptionGroup var options: ReplicaOptions
    @Argument(help: "Table.") var table: String
    @Argument(help: "Row id.") var row: String
    @Argument(help: "Column (default: all).") var column: String?
    @Flag(help: "Show values in full instead of shortened.") var full = false
    @Option(name: .long, help: ArgumentHelp("Extra CA certificates (PEM) to trust (default: the one given to kt init).", valueName: "file")) var caBundle: String?

    func run() throws {
        let replica = try options.open()
        // A typo must not read as "no history": the server answers an unknown table or row with nothing.
        if let problem = replica.dataModel.addressProblem(table: table, row: row, column: column) { throw ValidationError(problem) }
        let entries: [HistoryEntry]
        do {
            entries = try SyncEngine(replica: replica, caBundlePath: caBundle).history(table: table, row: row, column: column)
        } catch {
            Terminal.printError("history failed: \(error)")
            throw ExitCode(2)
        }
        if replica.dataModel.table(named: table)?.scope?.global != true {
            try replica.recordViews(table: table, rows: [row], purpose: "kt history", skippingRowsNotHeld: true)
        }
        if options.json { return try Terminal.printJSON(entries) }
        Terminal.printHistory(entries, full: full)
    }
}

struct Due: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List overdue and upcoming deadlines of the cases on this device, offline.",
        discussion: """
            Investigation: 6 weeks after the melding. Decision: 2 weeks after the application (Wmo),
            8 weeks for youth and participation. Also the next contact date agreed with the resident.
              kt due --db laptop.sqlite --within 14
              kt due --db laptop.sqlite --contact "Fatima Yilmaz" --json
            """)
    @OptionGroup var options: ReplicaOptions
    @Option(help: "Show deadlines due within this many days (overdue ones always).") var within = 14
    @Option(help: ArgumentHelp("Only cases of this contact person.", valueName: "name")) var contact: String?
    @Option(help: ArgumentHelp("Count from this date instead of today (YYYY-MM-DD).", valueName: "date")) var today: String?

    func run() throws {
        let day = today ?? CalendarDay.string(Int(Date().timeIntervalSince1970 / 86400))
        guard CalendarDay.number(day) != nil else { throw ValidationError("--today takes a date YYYY-MM-DD") }
        let items = try options.open().due(today: day, within: within, contactPerson: contact)
        if options.json { return try Terminal.printJSON(items) }
        Terminal.printTable(["DUE", "IN", "DEADLINE", "RESIDENT", "CONTACT", "CASE"], items.map {
            [$0.deadline.due, $0.deadline.daysLeft < 0 ? Terminal.paint("\(-$0.deadline.daysLeft)d OVERDUE", .red) : "\($0.deadline.daysLeft)d",
             $0.deadline.kind.rawValue, $0.resident, $0.contactPerson ?? "-", $0.caseID]
        }, empty: "Nothing overdue or due within \(within) days.")
    }
}
