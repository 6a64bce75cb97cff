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
            separated by ';'. Values are checked against the data model at once:
              kt sql --db laptop.sqlite "INSERT INTO notes (id, case_id, body) VALUES ('…', '…', 'Visited at home')"
            """)

    @OptionGroup var options: ReplicaOptions
    @Argument(help: "The SQL to run.") var sql: String

    func run() throws {
        let replica = try options.open()
        let trimmed = sql.trimmingCharacters(in: .whitespacesAndNewlines)
        let isQuery = ["select", "with", "pragma", "explain", "values"].contains { trimmed.lowercased().hasPrefix($0) }
        do {
            if isQuery {
                let result = try replica.query(trimmed)
                if options.json {
                    return try Terminal.printJSON(result.rows.map { row in
                        Dictionary(uniqueKeysWithValues: zip(result.columns, row.map(JSONCell.init)))
                    })
                }
                Terminal.printTable(result.columns, result.rows.map { $0.map { Terminal.shorten($0.description, to: 60) } }, empty: "(no rows)")
            } else {
                try replica.execute(trimmed)
                if options.json { return try Terminal.printJSON(["ok": true]) }
                let waiting = try replica.status().pending
                print("OK; \(waiting) cell change\(waiting == 1 ? "" : "s") waiting to be sent (run `kt sync`)")
            }
        } catch let error as SQLiteError {
            Terminal.printError("Error: " + SQLProblem.describe(error, model: replica.dataModel))
            throw ExitCode.failure
        } catch {
            Terminal.printError("Error: \(error)")
            throw ExitCode.failure
        }
    }
}
