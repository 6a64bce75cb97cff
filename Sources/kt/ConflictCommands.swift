import ArgumentParser
import Foundation
import KeukentafelClient
import KeukentafelProtocol
import KeukentafelTerminal

struct Conflicts: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Conflicts the server recorded on rows this device sees: list, show, resolve.",
        subcommands: [List.self, Show.self, Resolve.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List conflicts, newest first.",
            discussion: """
                  kt conflicts list --db laptop.sqlite --unresolved --review
                  kt conflicts list --db laptop.sqlite --table cases --mine
                """)
        @OptionGroup var options: ReplicaOptions
        @Option(help: "Only this table.") var table: String?
        @Option(help: ArgumentHelp("Only this row (id or its first characters).", valueName: "id")) var row: String?
        @Option(help: ArgumentHelp("Only conflicts recorded on or after this date (YYYY-MM-DD).", valueName: "date")) var since: String?
        @Option(help: ArgumentHelp("Only conflicts in which this device (id or name) took part.", valueName: "device")) var device: String?
        @Option(help: ArgumentHelp("Only conflicts in which a device of this user took part.", valueName: "user")) var user: String?
        @Flag(help: "Only conflicts nobody resolved yet.") var unresolved = false
        @Flag(help: "Only the review queue (columns the data model flags for review).") var review = false
        @Flag(help: "Only conflicts in which a write of this device lost.") var mine = false
        @Flag(help: "Show values in full instead of shortened.") var full = false

        func run() throws {
            let replica = try options.open()
            let filter = ConflictFilter(table: table, row: row, since: since, device: device, user: user,
                                        unresolvedOnly: unresolved, reviewOnly: review)
            let conflicts = try replica.conflicts().filter { filter.matches($0) && (!mine || $0.loserVersion.node == replica.node) }
            if options.json { return try Terminal.printJSON(conflicts) }
            let width = full ? Int.max : 28
            Terminal.printTable(["ID", "CELL", "WINNER", "LOSER", "RULE", "MINE LOST", "STATE", "RECORDED"], conflicts.map {
                ["\($0.id)", "\($0.table)/\($0.row.prefix(8))…/\($0.column)", Terminal.shorten($0.winnerValue.description, to: width),
                 Terminal.shorten($0.loserValue.description, to: width), $0.rule + ($0.review ? " (review)" : ""),
                 $0.loserVersion.node == replica.node ? Terminal.paint("yes", .red) : "",
                 $0.resolvedAt != nil ? Terminal.paint("resolved", .green)
                    : ($0.resolution != nil ? Terminal.paint("resolved (not synced)", .yellow) : Terminal.paint("open", .yellow)),
                 Terminal.age(ofISO: $0.recordedAt)]
            }, empty: "No conflicts.")
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one conflict in full: both sides, who, which device, when, the base and the rule.")
        @OptionGroup var options: ReplicaOptions
        @Argument(help: "Conflict id.") var id: Int64

        func run() throws {
            // Not found is not a usage error: the same words and exit code as `resolve` (1).
            let replica = try options.open()
            guard let conflict = try replica.conflicts().first(where: { $0.id == id }) else { throw ResolveError.unknownConflict(id) }
            if replica.dataModel.table(named: conflict.table)?.scope?.global != true {
                try replica.recordViews(table: conflict.table, rows: [conflict.row], purpose: "kt conflicts show", skippingRowsNotHeld: true)
            }
            if options.json { return try Terminal.printJSON(conflict) }
            print(Terminal.describe(conflict))
        }
    }

    struct Resolve: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Settle a conflict in one action; the change and the decision sync to every device.",
            discussion: """
                  kt conflicts resolve 12 --keep loser --db laptop.sqlite     # restore the value that lost
                  kt conflicts resolve 12 --keep winner --db laptop.sqlite    # agree with the outcome
                  kt conflicts resolve 12 --value gesloten --db laptop.sqlite # write another value
                Then run `kt sync`.
                """)
        @OptionGroup var options: ReplicaOptions
        @Argument(help: "Conflict id.") var id: Int64
        @Option(help: "winner or loser.") var keep: String?
        @Option(help: "A new value instead (text; numbers are stored as numbers when the column is numeric).") var value: String?
        @Option(help: "Why, for the record.") var note: String?

        func run() throws {
            let replica = try options.open()
            let choice: ConflictChoice
            switch (keep, value) {
            case ("winner"?, nil): choice = .keepWinner
            case ("loser"?, nil): choice = .restoreLoser
            case (nil, let text?):
                guard let conflict = try replica.conflicts().first(where: { $0.id == id }) else { throw ResolveError.unknownConflict(id) }
                choice = .value(try replica.dataModel.value(fromText: text, table: conflict.table, column: conflict.column))
            default: throw ValidationError("say either --keep winner, --keep loser or --value V")
            }
            try replica.resolve(conflict: id, choice, note: note)
            if options.json { return try Terminal.printJSON(["resolved": id]) }
            print("Conflict \(id) resolved on this device; run `kt sync --db \(options.db)` to send the decision.")
        }
    }
}
