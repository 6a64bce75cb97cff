import ArgumentParser
import Foundation
import KeukentafelClient
import KeukentafelProtocol
import KeukentafelSQLite
import KeukentafelTerminal

struct SQL: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sql", abstract: "Run SQL on the replica; writes are captured and synced.",
        discussion: """
            Queries print their rows; writes print how many rows changed. Several statements may be
            separated by ';': they run together in one transaction, all or none. Values are checked
            against the data model at once. The sync's own tables (_kt_*) can be read but not changed,
            and _kt_meta (which holds the token) not read:
              kt sql --db laptop.sqlite "INSERT INTO notes (id, case_id, body) VALUES ('…', '…', 'Visited at home')"
            """)

    @OptionGroup var options: ReplicaOptions
    @Argument(help: "The SQL to run.") var sql: String
    @Option(help: ArgumentHelp("Why you look at these rows, for the log of who viewed a resident's data (rows shown with their id are recorded).",
                               valueName: "text"))
    var purpose = "kt sql"

    func run() throws {
        let replica = try options.open()
        let results: [StatementResult]
        do {
            results = try replica.executeScript(sql)
        } catch let error as SQLiteError {
            Terminal.printError("Error: " + SQLProblem.describe(error, model: replica.dataModel)
                                + (sql.contains(";") ? " (nothing was changed: the statements run together or not at all)" : ""))
            throw ExitCode.failure
        } catch {
            Terminal.printError("Error: \(error)")
            throw ExitCode.failure
        }
        // Recorded before anything is shown: what is shown was viewed (decision 0030).
        for (table, shown) in Dictionary(grouping: results.flatMap(\.rowsShown), by: \.table) {
            try replica.recordViews(table: table, rows: shown.map(\.row), purpose: purpose, skippingRowsNotHeld: true)
        }
        if options.json { return try printJSON(results) }
        for (index, result) in results.enumerated() {
            if results.count > 1 { print((index > 0 ? "\n" : "") + "-- " + Terminal.shorten(result.sql, to: 100)) }
            if result.isQuery {
                Terminal.printTable(result.columns, result.rows.map { $0.map { Terminal.shorten($0.description, to: 60) } }, empty: "(no rows)")
            } else {
                print("OK; \(result.changes) row\(result.changes == 1 ? "" : "s") changed")
            }
        }
        if results.contains(where: { !$0.isQuery }) {
            let waiting = try replica.status().pending
            print("\(waiting) cell change\(waiting == 1 ? "" : "s") waiting to be sent (run `kt sync`)")
        }
    }

    /// One statement: its rows, or `{"ok": true, "changes": n}`; several: one object per statement.
    private func printJSON(_ results: [StatementResult]) throws {
        func rows(_ result: StatementResult) -> [[String: JSONCell]] {
            result.rows.map { Dictionary(uniqueKeysWithValues: zip(result.columns, $0.map(JSONCell.init))) }
        }
        if results.count == 1, let only = results.first {
            if only.isQuery { return try Terminal.printJSON(rows(only)) }
            struct Written: Encodable { var ok = true; var changes: Int }
            return try Terminal.printJSON(Written(changes: only.changes))
        }
        struct Each: Encodable {
            var sql: String
            var rows: [[String: JSONCell]]?
            var changes: Int?
        }
        try Terminal.printJSON(results.map { Each(sql: $0.sql, rows: $0.isQuery ? rows($0) : nil, changes: $0.isQuery ? nil : $0.changes) })
    }
}
