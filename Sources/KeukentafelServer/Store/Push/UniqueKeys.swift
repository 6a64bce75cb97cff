import KeukentafelProtocol
import KeukentafelSQLite

extension PushContext {
    /// After a change to a column of a unique key: if another live row now has the same key, both rows
    /// stay (nothing typed is dropped) and a `duplicate` conflict goes to the review queue, once per pair.
    mutating func checkDuplicates(after change: Change, in table: DataModel.Table) throws -> Int64? {
        var found: Int64?
        for key in table.unique ?? [] where key.columns.contains(change.column) || key.whenColumn == change.column {
            let cells = try cells(table: table.name, row: change.row)
            let values = key.columns.map { cells[$0]?.value.value ?? .null }
            guard !values.contains(.null) else { continue }
            if let when = key.whenColumn {
                guard case .text(let status)? = cells[when]?.value.value, (key.whenValues ?? []).contains(status) else { continue }
            }
            try flushWrites()  // the lookup below reads the other rows' links from the store
            // Rows with the same first key column, then compare the rest in memory (keys are short). In
            // row order, so conflict records come out the same whatever order the database stored rows in.
            let candidates = try Records(connection, store: store).rows(of: table.name, whose: key.columns[0], isAnyOf: [values[0]])
            for other in candidates where other != change.row {
                if try rowState(table: table.name, row: other).isDeleted { continue }
                let otherCells = try self.cells(table: table.name, row: other)
                guard key.columns.map({ otherCells[$0]?.value.value ?? .null }) == values else { continue }
                if let when = key.whenColumn {
                    guard case .text(let status)? = otherCells[when]?.value.value, (key.whenValues ?? []).contains(status) else { continue }
                }
                let pair = [other, change.row].sorted()
                let label = key.columns.joined(separator: "+")
                let existing = try connection.query(
                    "SELECT id FROM conflicts WHERE tbl = ? AND rule = 'duplicate' AND col = ? AND winner_value = ? AND loser_value = ?",
                    [.text(table.name), .text(label), .text(pair[0]), .text(pair[1])])
                if !existing.isEmpty { continue }
                let older = otherCells.values.map(\.version).min() ?? change.version
                found = try recordConflict(
                    table: table, key: CellKey(table: table.name, row: change.row, column: label),
                    winner: VersionedValue(value: .text(pair[0]), version: older), winnerDevice: nil,
                    loser: VersionedValue(value: .text(pair[1]), version: change.version), loserDevice: device,
                    base: nil, rule: "duplicate", review: true)
            }
        }
        return found
    }
}
