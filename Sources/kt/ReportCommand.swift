import ArgumentParser
import Foundation
import KeukentafelClient
import KeukentafelProtocol

extension ReportFormat: ExpressibleByArgument {}

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The council's half-year and year figures, counted offline from the records on this replica.",
        discussion: """
            Counts Wmo requests (new and reassessments), home visits, provisions running at the end of each
            half-year, clients per provider, aids on loan on 31 December, new provisions, decisions, the legal
            deadlines (6 weeks to investigate, 2 weeks to decide; 8 for youth and participation) with the overdue
            requests, and distinct Wmo clients. The counting rules are printed under every table and written in
            docs/reports.md. On a consultant's laptop it counts what that device may see; on the office's full
            replica, the whole municipality.
              kt report --db office.sqlite --year 2025
              kt report --db office.sqlite --from 2022 --to 2025 --municipality gemeente-1 --format html --out raad-2025.html
              kt report --db office.sqlite --year 2025 --format csv --suppress-small --out wmo-2025.csv
            """)

    @OptionGroup var options: ReplicaOptions
    @Option(help: ArgumentHelp("The year to report on: its two half-years and the year.", valueName: "year")) var year: Int?
    @Option(help: ArgumentHelp("First year of a comparison over several years (with --to): every half-year side by side.", valueName: "year"))
    var from: Int?
    @Option(help: ArgumentHelp("Last year of the comparison.", valueName: "year")) var to: Int?
    @Option(help: ArgumentHelp("Only the cases of this municipality (its code, e.g. gemeente-1).", valueName: "code")) var municipality: String?
    @Option(help: ArgumentHelp("Only the cases of this team (its code).", valueName: "code")) var team: String?
    @Option(help: "table, csv, json or html (one self-contained page with charts).") var format: ReportFormat = .table
    @Option(help: ArgumentHelp("Write the report to this file instead of the terminal.", valueName: "file")) var out: String?
    @Option(help: ArgumentHelp("Judge deadlines on this date instead of today (YYYY-MM-DD).", valueName: "date")) var asOf: String?
    @Flag(help: "Show counts of 1 to 4 as <5 (null in JSON), for tables that are published.") var suppressSmall = false

    func validate() throws {
        switch (year, from, to) {
        case (.some, nil, nil), (nil, .some, .some): break
        case (.some, _, _): throw ValidationError("give either --year, or --from and --to, not both")
        case (nil, .some, nil): throw ValidationError("--from needs --to (the last year of the comparison)")
        case (nil, nil, .some): throw ValidationError("--to needs --from (the first year of the comparison)")
        case (nil, nil, nil): throw ValidationError("say which year: --year 2025, or --from 2022 --to 2025 to compare years")
        }
        if let asOf, CalendarDay.number(asOf) == nil { throw ValidationError("--as-of takes a date YYYY-MM-DD (got '\(asOf)')") }
        if options.json, format != .json, format != .table { throw ValidationError("--json and --format \(format.rawValue) contradict each other") }
    }

    func run() throws {
        let today = asOf ?? CalendarDay.string(Int(Date().timeIntervalSince1970 / 86400))
        let request = ReportRequest(firstYear: year ?? from!, lastYear: year ?? to!, municipality: municipality, team: team, asOf: today)
        let report = try options.open().councilReport(request)  // a ReportError says what and its code
        let text = try report.rendered(as: options.json ? .json : format, suppressSmallCounts: suppressSmall)
        guard let out else { return print(text, terminator: "") }
        let folder = (out as NSString).deletingLastPathComponent
        var isDirectory: ObjCBool = false
        guard folder.isEmpty || (FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) && isDirectory.boolValue) else {
            throw ValidationError("the folder '\(folder)' for --out does not exist")
        }
        // Written whole or not at all: a reader never sees half a report.
        let temporary = out + ".tmp-\(getpid())"
        try Data(text.utf8).write(to: URL(fileURLWithPath: temporary))
        guard rename(temporary, out) == 0 else {
            unlink(temporary)
            throw ValidationError("could not write '\(out)': \(String(cString: strerror(errno)))")
        }
        FileHandle.standardError.write(Data("Wrote \(out) (\(report.tables.count) tables, \(report.overdue.count) overdue requests).\n".utf8))
    }
}
