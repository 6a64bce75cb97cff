import Foundation
import KeukentafelProtocol

/// Conflict records: listing them, and the office's decisions on them (`ktd admin conflicts`).
public struct Conflicts: Sendable {
    let store: ServerStore

    init(store: ServerStore) { self.store = store }

    /// How the office settles a conflict.
    public enum Choice: Sendable {
        case keepWinner, restoreLoser
        case value(CellValue)
    }

    /// Resolves a conflict from the office (`ktd admin conflicts resolve`): the chosen value is written
    /// as a new change of the server's own node, newer than the cell's current version, and the record
    /// is marked resolved by `person`. Both sync to every device that sees the row.
    public func resolve(id: Int64, _ choice: Choice, by person: String, note: String? = nil) throws -> PushResponse {
        guard let conflict = try find(id: id) else { throw AdminError.notFound("no conflict with id \(id)") }
        if let resolvedAt = conflict.resolvedAt {
            throw AdminError.invalid("conflict \(id) was already resolved at \(resolvedAt) by \(conflict.resolvedBy ?? "?")")
        }
        let what: String
        var changes: [Change] = []
        let node = store.node
        func change(_ value: CellValue) throws -> Change {
            let current = try store.inspection.cell(table: conflict.table, row: conflict.row, column: conflict.column)
            var clock = HybridLogicalClock(last: current?.version.hlc ?? 0)
            let version = CellVersion(hlc: clock.tick(wallMilliseconds: UInt64(store.clock())), node: node)
            return Change(id: "office-\(UUID().uuidString.lowercased())", table: conflict.table, row: conflict.row, column: conflict.column,
                          value: value, version: version, base: current?.version)
        }
        switch choice {
        case .keepWinner:
            what = "kept winner"
        case .restoreLoser:
            changes.append(try change(conflict.loserValue))
            what = "restored loser"
        case .value(let value):
            changes.append(try change(value))
            what = "new value"
        }
        let text = "\(what) (\(person))" + (note.map { ": \($0)" } ?? "")
        let response = try store.push(changes, device: "office", resolutions: [Resolution(conflict: id, resolution: text)])
        if let rejected = response.results.first(where: { $0.status == .rejected }) {
            throw AdminError.invalid("the value was refused: \(rejected.message ?? rejected.code?.rawValue ?? "rejected")")
        }
        try store.audit.record(actor: person, action: "conflict.resolve", subject: "conflict \(id)",
                              detail: "\(conflict.table) \(conflict.row) \(conflict.column): \(what)")
        return response
    }
}

extension Conflicts {
    /// Conflict records, newest first, optionally only unresolved ones.
    public func list(unresolvedOnly: Bool = false, limit: Int = 1000) throws -> [ConflictRecord] {
        try store.reader.withConnection { connection in
            try Self.read(connection, where: unresolvedOnly ? "resolved_at IS NULL" : "true",
                                [], order: "id DESC LIMIT \(max(1, limit))")
        }
    }

    /// The conflict record with this id, if there is one.
    public func find(id: Int64) throws -> ConflictRecord? {
        try store.reader.withConnection { try Self.read($0, where: "id = ?", [.integer(id)]).first }
    }

    /// Conflict records `condition` selects, with the names of the devices and users involved.
    static func read(_ connection: any StoreConnection, where condition: String, _ arguments: [CellValue],
                         order: String = "seq") throws -> [ConflictRecord] {
        let rows = try connection.query("""
            SELECT id, tbl, row_id, col, winner_value, winner_hlc, winner_node, winner_device,
                   loser_value, loser_hlc, loser_node, loser_device, base_hlc, base_node, rule, review, recorded_at,
                   resolved_at, coalesce((SELECT name FROM devices WHERE id = resolved_by), resolved_by), resolution,
                   (SELECT name FROM devices WHERE id = winner_device), (SELECT name FROM devices WHERE id = loser_device),
                   (SELECT u.name FROM devices d JOIN users u ON u.id = d.user_id WHERE d.id = winner_device),
                   (SELECT u.name FROM devices d JOIN users u ON u.id = d.user_id WHERE d.id = loser_device)
            FROM conflicts WHERE \(condition) ORDER BY \(order)
            """, arguments)
        return rows.compactMap { r in
            guard let id = r[0].int64, let table = r[1].string, let row = r[2].string, let column = r[3].string,
                  let winnerVersion = CellVersion(hlc: r[5], node: r[6]), let loserVersion = CellVersion(hlc: r[9], node: r[10])
            else { return nil }
            return ConflictRecord(
                id: id, table: table, row: row, column: column,
                winnerValue: r[4], winnerVersion: winnerVersion, winnerDevice: r[7].string,
                loserValue: r[8], loserVersion: loserVersion, loserDevice: r[11].string,
                base: CellVersion(hlc: r[12], node: r[13]), rule: r[14].string ?? "lww", review: r[15].int64 == 1,
                recordedAt: r[16].string ?? "", resolvedAt: r[17].string, resolvedBy: r[18].string, resolution: r[19].string,
                winnerDeviceName: r[20].string, loserDeviceName: r[21].string, winnerUser: r[22].string, loserUser: r[23].string)
        }
    }
}
