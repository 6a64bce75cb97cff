import KeukentafelProtocol
import KeukentafelSQLite

/// How a person settles a conflict.
public enum ConflictChoice: Sendable, Equatable {
    /// Leave the winning value; only the record is marked resolved.
    case keepWinner
    /// Write the losing value again (a new write, so it wins from now on).
    case restoreLoser
    /// Write another value.
    case value(CellValue)
}

public enum ResolveError: Error, CustomStringConvertible {
    case unknownConflict(Int64)
    case alreadyResolved(Int64, String)

    public var description: String {
        switch self {
        case .unknownConflict(let id): return "no conflict \(id) on this device (run `kt sync` to fetch new ones)"
        case .alreadyResolved(let id, let how): return "conflict \(id) is already resolved (\(how))"
        }
    }
}

extension Replica {
    /// Settles a conflict in one action: the data change is an ordinary captured write (so it syncs
    /// and is validated like any other), and the decision is queued for the next push, which marks
    /// the record resolved on the server and, from there, on every device.
    public func resolve(conflict id: Int64, _ choice: ConflictChoice, note: String? = nil) throws {
        guard let conflict = try conflicts().first(where: { $0.id == id }) else { throw ResolveError.unknownConflict(id) }
        if let resolvedAt = conflict.resolvedAt { throw ResolveError.alreadyResolved(id, "\(conflict.resolution ?? "") at \(resolvedAt)") }
        if let pending = conflict.resolution { throw ResolveError.alreadyResolved(id, "\(pending) on this device, not yet synced") }
        try locked { try connection.transaction {
            let table = ReplicaSchema.quote(conflict.table)
            let what: String
            switch choice {
            case .keepWinner:
                what = "kept winner"
            case .restoreLoser where conflict.column == Merge.deletedColumn:
                // The loser was a deletion (or a restore): write it again.
                if conflict.loserValue == .integer(1) {
                    try connection.run("DELETE FROM \(table) WHERE id = ?", [.text(conflict.row)])
                }
                what = "restored loser"
            case .restoreLoser:
                try write(conflict.loserValue, table: conflict.table, row: conflict.row, column: conflict.column)
                what = "restored loser"
            case .value(let value):
                try write(value, table: conflict.table, row: conflict.row, column: conflict.column)
                what = "new value"
            }
            let text = note.map { "\(what): \($0)" } ?? what
            try connection.run("INSERT OR REPLACE INTO _kt_resolutions (conflict_id, resolution, decided_at, state) VALUES (?, ?, ?, 'pending')",
                               [.integer(id), .text(text), .integer(clock())])
            try connection.run("UPDATE _kt_conflicts SET resolution = ?, resolved_by = 'this device (not yet synced)' WHERE id = ?",
                               [.text(text), .integer(id)])
        } }
    }

    /// Writes one cell as the app would. A row that is gone locally (it lost to a deletion) is
    /// inserted again from the values kept beside its versions, so it comes back whole.
    private func write(_ value: CellValue, table: String, row: String, column: String) throws {
        let quoted = ReplicaSchema.quote(table)
        let exists = try connection.scalar("SELECT 1 FROM \(quoted) WHERE id = ?", [.text(row)]) != nil
        if exists {
            try connection.run("UPDATE \(quoted) SET \(ReplicaSchema.quote(column)) = ? WHERE id = ?", [value, .text(row)])
            return
        }
        guard let model = dataModel.table(named: table) else { return }
        var values: [String: CellValue] = [:]
        for kept in try connection.query("SELECT col, val FROM _kt_kept WHERE tbl = ? AND row_id = ? AND col <> '_deleted'", [.text(table), .text(row)]) {
            if case .text(let name) = kept[0] { values[name] = kept[1] }
        }
        values[column] = value
        let columns = model.columns.map(\.name)
        try connection.run(
            "INSERT INTO \(quoted) (id, \(columns.map(ReplicaSchema.quote).joined(separator: ", "))) VALUES (?\(String(repeating: ", ?", count: columns.count)))",
            [.text(row)] + columns.map { values[$0] ?? .null })
    }

    /// Decisions waiting to be pushed.
    func pendingResolutions() throws -> [Resolution] {
        try locked {
            try connection.query("SELECT conflict_id, resolution FROM _kt_resolutions WHERE state = 'pending' ORDER BY conflict_id").compactMap { r in
                guard case .integer(let id) = r[0], case .text(let text) = r[1] else { return nil }
                return Resolution(conflict: id, resolution: text)
            }
        }
    }

    /// Records the server's answer to the decisions sent: recorded ones leave the queue; refused ones
    /// stay, marked refused with the server's reason (`kt status`), and the conflict is open again here.
    func acknowledgeResolutions(_ ids: [Int64], refused: [RefusedResolution]) throws {
        let refusals = Dictionary(refused.map { ($0.conflict, $0) }) { first, _ in first }
        try locked {
            try connection.transaction {
                for id in ids {
                    if let refusal = refusals[id] {
                        try connection.run("UPDATE _kt_resolutions SET state = 'refused', code = ?, message = ? WHERE conflict_id = ?",
                                           [.text(refusal.code.rawValue), .text(refusal.message), .integer(id)])
                        try connection.run("UPDATE _kt_conflicts SET resolution = NULL, resolved_by = NULL WHERE id = ? AND resolved_at IS NULL",
                                           [.integer(id)])
                    } else {
                        try connection.run("DELETE FROM _kt_resolutions WHERE conflict_id = ?", [.integer(id)])
                    }
                }
            }
        }
    }

    /// Decisions the server refused, with why.
    public func refusedResolutions() throws -> [RefusedResolution] {
        try locked {
            try connection.query("SELECT conflict_id, code, message FROM _kt_resolutions WHERE state = 'refused' ORDER BY conflict_id")
                .compactMap { r in
                    guard case .integer(let id) = r[0], case .text(let code) = r[1] else { return nil }
                    return RefusedResolution(conflict: id, code: ErrorCode(rawValue: code) ?? .badRequest, message: r[2].description)
                }
        }
    }
}
