import ArgumentParser
import Foundation
import KeukentafelServer
import KeukentafelTerminal

struct PruneHistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune-history",
        abstract: "Remove history entries older than the retention period; current values and open conflicts stay.",
        discussion: """
            The store keeps every accepted change (who, which device, when, which value) until this is run. It removes
            the entries received before the period, except those of rows with an open conflict. Current values,
            conflict records and the audit trail are not touched; the count goes to the audit trail.

            The period comes from --older-than or from history-retention in the configuration file: a number with
            d (days), w (weeks), m (months of 30 days) or y (years of 365 days); at least 30 days.
              ktd admin prune-history --older-than 2y --dry-run    # what would go
              ktd admin prune-history --older-than 2y
            Run it daily from a timer (Tools/keukentafel-prune.timer); it may run while ktd serves.
            On SQLite the file does not shrink: new history reuses the space.
            """)
    @OptionGroup var store: StoreOptions
    @Option(help: ArgumentHelp("Remove what is older than this: 90d, 26w, 18m, 2y. Default: history-retention from the configuration file.",
                               valueName: "period"))
    var olderThan: String?
    @Flag(help: "Count what would be removed, and remove nothing.") var dryRun = false
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        guard let period = try store.configFile().value("history-retention", flag: olderThan) else {
            throw ValidationError("say how old: --older-than 2y, or history-retention = 2y in the configuration file")
        }
        guard let days = HistoryRetention.days(period) else {
            throw ValidationError("'\(period)' is not a period: use a number with d, w, m or y, such as 90d or 2y")
        }
        guard days >= HistoryRetention.minimumDays else {
            throw ValidationError("'\(period)' is \(days) days; history is kept at least \(HistoryRetention.minimumDays) days")
        }
        let report = try store.openStore().retention.prune(olderThanDays: days, actor: adminActor(), dryRun: dryRun)
        if json { return try Terminal.printJSON(report) }
        let verb = dryRun ? "Would remove" : "Removed"
        print("\(verb) \(report.summary) received before \(report.cutoff).")
        if report.keptForOpenConflicts > 0 {
            print("Kept \(report.keptForOpenConflicts) older entr\(report.keptForOpenConflicts == 1 ? "y" : "ies") of rows with an open conflict "
                  + "(`ktd admin conflicts list`).")
        }
    }
}
