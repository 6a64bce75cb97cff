import ArgumentParser
import Foundation
import KeukentafelClient
import KeukentafelProtocol
import KeukentafelTerminal

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show outbox, last sync, cursor, refused changes and conflicts.")
    @OptionGroup var options: ReplicaOptions

    func run() throws {
        let status = try options.open().status()
        if options.json { return try Terminal.printJSON(status) }
        print("replica      \(status.path) (node \(status.node), data model v\(status.schemaVersion), "
              + (status.encrypted ? "encrypted)" : "not encrypted)"))
        print("server       \(status.server)")
        print("last sync    \(status.lastSyncAt.map { Terminal.relativeTime($0) } ?? "never")")
        if let error = status.lastError { print("last error   \(error)") }
        print("cursor       \(status.cursor)" + (status.hasSynced ? "" : status.cursor > 0
            ? " (partly downloaded: the first download was interrupted; `kt sync` goes on where it stopped)"
            : " (nothing downloaded yet: run `kt sync`)"))
        print("outbox       \(status.pending) waiting to be sent, \(status.rejected) refused by the server")
        print("conflicts    \(status.conflicts) known, \(status.lostWrites) of them lost by writes from this device")
        if let newer = status.serverSchemaVersion, newer > status.schemaVersion {
            print("data model   the server runs v\(newer), this replica v\(status.schemaVersion): run `kt upgrade --db \(options.db)`")
        }
        for refused in status.refusedResolutions {
            print("  " + Terminal.paint("•", .red) + " your decision on conflict \(refused.conflict) was refused: \(refused.message) [\(refused.code.rawValue)]")
        }
        for lost in status.lostChanges {
            let other = lost.winnerDeviceName ?? lost.winnerDevice ?? "another device"
            let what: String
            switch lost.rule {
            case "delete-wins": what = "your \(lost.table).\(lost.column) = \(Terminal.shorten(lost.loserValue.description)) was made on a row \(other) deleted"
            case "edit-wins": what = "your deletion of \(lost.table) \(lost.row.prefix(8))… lost to a later edit by \(other)"
            case "immutable": what = "your \(lost.table).\(lost.column) = \(Terminal.shorten(lost.loserValue.description)) came after it was fixed"
            case "duplicate": what = "your new \(lost.table) row duplicates one made by \(other)"
            default: what = "your \(lost.table).\(lost.column) = \(Terminal.shorten(lost.loserValue.description)) lost to \(Terminal.shorten(lost.winnerValue.description)) by \(other)"
            }
            print("  " + Terminal.paint("•", .red) + " \(what) (\(Terminal.age(ofISO: lost.recordedAt)); `kt conflicts show \(lost.id)`)")
        }
        // One line per row and reason: a refused new row is many cells with one cause.
        var groups: [(key: String, changes: [ReplicaStatus.RejectedChange])] = []
        for rejected in status.rejectedChanges {
            let parts = rejected.cell.split(separator: "/", maxSplits: 2).map(String.init)
            let key = (parts.count == 3 ? "\(parts[0])/\(parts[1].prefix(8))…" : rejected.cell) + "\u{0}" + rejected.code + "\u{0}" + rejected.message
            if let index = groups.firstIndex(where: { $0.key == key }) { groups[index].changes.append(rejected) } else { groups.append((key, [rejected])) }
        }
        for group in groups {
            let first = group.changes[0]
            let parts = first.cell.split(separator: "/", maxSplits: 2).map(String.init)
            let what = group.changes.count == 1 || parts.count < 3
                ? "\(first.cell) = \(Terminal.shorten(first.value))"
                : "\(parts[0])/\(parts[1].prefix(8))… (\(group.changes.compactMap { $0.cell.split(separator: "/", maxSplits: 2).last.map(String.init) }.joined(separator: ", ")))"
            print("  refused \(what) [\(first.code)]: \(first.message)")
        }
    }
}
