import Foundation
import KeukentafelProtocol
import KeukentafelSQLite

/// What `Replica.upgrade(to:)` did.
public struct UpgradeReport: Sendable, Codable, Equatable {
    public var fromVersion: Int
    public var toVersion: Int
    public var tablesAdded: [String] = []
    public var columnsAdded: [String] = []
    /// Cells received earlier for tables or columns the old model did not know, applied now.
    public var stashedCellsApplied = 0
    /// Local changes refused with `upgrade_required`, queued again.
    public var changesRequeued = 0
}

public enum UpgradeError: Error, CustomStringConvertible {
    case incompatible([String])
    case notNewer(Int, Int)

    public var description: String {
        switch self {
        case .incompatible(let problems):
            return "the server's data model cannot replace this replica's in place:\n  " + problems.joined(separator: "\n  ")
        case .notNewer(let mine, let theirs):
            return "this replica already has data model version \(mine) (the server's is \(theirs)); nothing to do"
        }
    }
}

extension Replica {
    /// Migrates the replica in place to a newer data model: new tables and columns are created, the
    /// capture triggers rebuilt, cells that arrived earlier for what the old model did not know are
    /// applied from the stash (nothing is downloaded again), and changes the server refused with
    /// `upgrade_required` are queued again. One transaction: after a crash, old model or new.
    public func upgrade(to newModel: DataModel) throws -> UpgradeReport {
        try locked {
            let old = dataModel
            guard newModel.version > old.version else { throw UpgradeError.notNewer(old.version, newModel.version) }
            let problems = newModel.evolutionProblems(from: old)
            guard problems.isEmpty else { throw UpgradeError.incompatible(problems) }
            try newModel.check()
            var report = UpgradeReport(fromVersion: old.version, toVersion: newModel.version)
            try connection.transaction {
                for table in newModel.tables {
                    if let existing = old.table(named: table.name) {
                        try connection.execute(ReplicaSchema.dropTriggers(for: existing))
                        for column in table.columns where existing.column(named: column.name) == nil {
                            try connection.execute("ALTER TABLE \(ReplicaSchema.quote(table.name)) ADD COLUMN \(ReplicaSchema.quote(column.name)) \(column.type.sqliteType)")
                            report.columnsAdded.append("\(table.name).\(column.name)")
                        }
                    } else {
                        report.tablesAdded.append(table.name)
                    }
                    try connection.execute(ReplicaSchema.ddl(for: table))
                }
                let json = String(decoding: try JSONEncoder().encode(newModel), as: UTF8.self)
                try setMeta("schema", json)
                dataModel = newModel
                upserts.removeAll()
                tablePlans.removeAll()

                // Apply what was stashed, through the normal page logic, as one synthetic page.
                var rows: [FeedRow] = []
                for r in try connection.query("SELECT tbl, row_id, col, value, hlc, node FROM _kt_stash ORDER BY tbl, row_id") {
                    guard case .text(let table) = r[0], case .text(let row) = r[1], case .text(let column) = r[2],
                          case .integer(let hlc) = r[4], case .integer(let node) = r[5], let nodeID = NodeID(rawValue: UInt64(node)) else { continue }
                    let cell = FeedCell(column: column, value: r[3], version: CellVersion(hlc: UInt64(hlc), node: nodeID))
                    if let last = rows.last, last.table == table, last.row == row {
                        rows[rows.count - 1].cells.append(cell)
                    } else {
                        rows.append(FeedRow(table: table, row: row, cells: [cell]))
                    }
                }
                try connection.execute("DELETE FROM _kt_stash")
                try withoutCapture {
                    var counts = ApplyCounts()
                    var newest: UInt64 = 0
                    for row in rows { try applyRow(row, counts: &counts, newest: &newest) }
                    report.stashedCellsApplied = counts.cellsApplied
                }
                try connection.run("UPDATE _kt_outbox SET state = 'pending', code = NULL, message = NULL WHERE state = 'rejected' AND code = ?",
                                   [.text(ErrorCode.upgradeRequired.rawValue)])
                report.changesRequeued = connection.changes
                try setMeta("server_schema_version", nil)
            }
            return report
        }
    }

    /// The newest data model version the server announced, when newer than this replica's.
    public var serverSchemaVersion: Int? {
        get throws { try locked { try meta("server_schema_version").flatMap(Int.init) } }
    }
}
