import Foundation
import KeukentafelProtocol

extension ServerStore {
    public enum Choice: Sendable {
        case keepWinner, restoreLoser
        case value(CellValue)
    }

    /// Resolves a conflict from the office (`ktd admin conflicts resolve`): the chosen value is written
    /// as a new change of the server's own node, newer than the cell's current version, and the record
    /// is marked resolved by `person`. Both sync to every device that sees the row.
    public func resolveConflict(id: Int64, _ choice: Choice, by person: String, note: String? = nil) throws -> PushResponse {
        guard let conflict = try conflict(id: id) else { throw AdminError.notFound("no conflict with id \(id)") }
        if let resolvedAt = conflict.resolvedAt {
            throw AdminError.invalid("conflict \(id) was already resolved at \(resolvedAt) by \(conflict.resolvedBy ?? "?")")
        }
        let what: String
        var changes: [Change] = []
        let node = self.node
        func change(_ value: CellValue) throws -> Change {
            let current = try cell(table: conflict.table, row: conflict.row, column: conflict.column)
            var clock = HybridLogicalClock(last: current?.version.hlc ?? 0)
            let version = CellVersion(hlc: clock.tick(wallMilliseconds: UInt64(self.clock())), node: node)
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
        let response = try push(changes, device: "office", resolutions: [Resolution(conflict: id, resolution: text)])
        if let rejected = response.results.first(where: { $0.status == .rejected }) {
            throw AdminError.invalid("the value was refused: \(rejected.message ?? rejected.code?.rawValue ?? "rejected")")
        }
        try recordAdminAction(actor: person, action: "conflict.resolve", subject: "conflict \(id)",
                              detail: "\(conflict.table) \(conflict.row) \(conflict.column): \(what)")
        return response
    }
}
