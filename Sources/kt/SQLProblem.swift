import KeukentafelProtocol
import KeukentafelSQLite

/// An SQLite error from `kt sql`, for the person who typed the SQL: SQLite's message without the
/// statement text (which may be one of the replica's own, from a trigger), and for a table or column
/// that the data model does not have, the name it most likely misspells.
enum SQLProblem {
    static func describe(_ error: SQLiteError, model: DataModel) -> String {
        let message = error.message
        for (prefix, names) in [("no such table: ", model.tables.map(\.name)),
                                ("no such column: ", ["id"] + model.tables.flatMap { $0.columns.map(\.name) })] where message.hasPrefix(prefix) {
            let typed = String(message.dropFirst(prefix.count).split(separator: ".").last ?? "")
            if let guess = DataModel.nearest(typed, among: names) { return message + " (did you mean '\(guess)'?)" }
        }
        return message
    }
}
