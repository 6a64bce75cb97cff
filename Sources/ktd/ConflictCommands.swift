import ArgumentParser
import Foundation
import KeukentafelProtocol
import KeukentafelTerminal
import KeukentafelServer
import Logging

// The office's view of conflicts (`ktd admin conflicts`) and of a record's history (`ktd admin history`).
struct ConflictsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conflicts", abstract: "Inspect and resolve conflict records in the server store.",
        subcommands: [List.self, Show.self, Resolve.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List conflicts, newest first.",
            discussion: """
                The same filters as `kt conflicts list` on a device, over every conflict in the store:
                  ktd admin conflicts list --review --unresolved          # the review queue
                  ktd admin conflicts list --user fatima --since 2026-11-01
                """)
        @OptionGroup var store: StoreOptions
        @Option(help: "Only this table.") var table: String?
        @Option(help: ArgumentHelp("Only this row (id or its first characters).", valueName: "id")) var row: String?
        @Option(help: ArgumentHelp("Only conflicts recorded on or after this date (YYYY-MM-DD).", valueName: "date")) var since: String?
        @Option(help: ArgumentHelp("Only conflicts in which this device (id or name) took part.", valueName: "device")) var device: String?
        @Option(help: ArgumentHelp("Only conflicts in which a device of this user took part.", valueName: "user")) var user: String?
        @Flag(help: "Only conflicts nobody resolved yet.") var unresolved = false
        @Flag(help: "Only the review queue (columns the data model flags for review).") var review = false
        @Option(help: "At most this many (newest first).") var limit = 1000
        @Flag(help: "Show values in full instead of shortened.") var full = false
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let filter = ConflictFilter(table: table, row: row, since: since, device: device, user: user,
                                        unresolvedOnly: unresolved, reviewOnly: review)
            let conflicts = Array(try store.openStore().conflicts.list(limit: 1_000_000).filter(filter.matches).prefix(limit))
            if json { return try Terminal.printJSON(conflicts) }
            let width = full ? Int.max : 28
            Terminal.printTable(["ID", "CELL", "WINNER", "LOSER", "WHO (WON / LOST)", "RULE", "STATE", "RECORDED"], conflicts.map {
                ["\($0.id)", "\($0.table)/\($0.row.prefix(8))…/\($0.column)", Terminal.shorten($0.winnerValue.description, to: width),
                 Terminal.shorten($0.loserValue.description, to: width),
                 "\($0.winnerUser ?? $0.winnerDeviceName ?? "office") / \($0.loserUser ?? $0.loserDeviceName ?? "office")",
                 $0.rule + ($0.review ? " (review)" : ""),
                 $0.resolvedAt != nil ? Terminal.paint("resolved", .green) : Terminal.paint("open", .yellow), Terminal.age(ofISO: $0.recordedAt)]
            }, empty: "No conflicts.")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one conflict in full.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Conflict id.") var id: Int64
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            guard let conflict = try store.openStore().conflicts.find(id: id) else { throw ValidationError("no conflict with id \(id)") }
            if json { return try Terminal.printJSON(conflict) }
            print(Terminal.describe(conflict))
        }
    }

    struct Resolve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Resolve a conflict from the office: the chosen value is a new write that syncs to every device.",
            discussion: """
                  ktd admin conflicts resolve 12 --keep loser --by "Anne de Wit" --data /var/lib/keukentafel
                  ktd admin conflicts resolve 12 --value gesloten --by "Anne de Wit" --note "closed after phone call"
                """)
        @OptionGroup var store: StoreOptions
        @Argument(help: "Conflict id.") var id: Int64
        @Option(help: "winner or loser.") var keep: String?
        @Option(help: "A new value instead (text; a number for numeric columns).") var value: String?
        @Option(help: "Who decides (recorded with the resolution).") var by: String
        @Option(help: "Why, for the record.") var note: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let serverStore = try store.openStore()
            let choice: Conflicts.Choice
            switch (keep, value) {
            case ("winner"?, nil): choice = .keepWinner
            case ("loser"?, nil): choice = .restoreLoser
            case (nil, let text?):
                guard let conflict = try serverStore.conflicts.find(id: id) else { throw ValidationError("no conflict with id \(id)") }
                choice = .value(try serverStore.dataModel.value(fromText: text, table: conflict.table, column: conflict.column))
            default: throw ValidationError("say either --keep winner, --keep loser or --value V")
            }
            _ = try serverStore.conflicts.resolve(id: id, choice, by: by, note: note)
            if json { return try Terminal.printJSON(try serverStore.conflicts.find(id: id)) }
            print("Conflict \(id) resolved by \(by); devices receive it on their next sync.")
        }
    }
}

struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history", abstract: "Every value a record (or one cell) had in the server store: who, which device, when.")
    @OptionGroup var store: StoreOptions
    @Argument(help: "Table.") var table: String
    @Argument(help: "Row id.") var row: String
    @Argument(help: "Column (default: all).") var column: String?
    @Flag(help: "Show values in full.") var full = false
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let serverStore = try store.openStore()
        if let problem = serverStore.dataModel.addressProblem(table: table, row: row, column: column) { throw ValidationError(problem) }
        let entries = try serverStore.history(table: table, row: row, column: column)
        if json { return try Terminal.printJSON(entries) }
        Terminal.printHistory(entries, full: full)
    }
}
