import Foundation
import KeukentafelProtocol

/// What a committed push touched: enough to wake only the long-polls of devices that may see some of
/// it (issue 23). A device it does not concern sleeps on; its pull would have answered with nothing.
public struct ChangeFootprint: Sendable, Equatable, Codable {
    /// Wake every long-poll: reference data everyone sees, a decision on a conflict, or a change whose
    /// footprint is not known (another process that did not say).
    public var everyone: Bool
    /// The scopes of the rows written and of the conflicts recorded, after the push, and the scopes rows
    /// left (their devices must hear of the eviction).
    public var scopes: Set<String>
    /// The columns written, per table: a partner sees only the columns of its profile.
    public var columns: [String: Set<String>]

    public init(everyone: Bool = false, scopes: Set<String> = [], columns: [String: Set<String>] = [:]) {
        self.everyone = everyone
        self.scopes = scopes
        self.columns = columns
    }

    /// Wakes every long-poll.
    public static let everyone = ChangeFootprint(everyone: true)

    /// Whether nothing was touched (every change refused or already known): nobody needs to wake.
    public var isEmpty: Bool { !everyone && scopes.isEmpty && columns.isEmpty }

    /// Whether a device with `access` may see something this push changed. Errs on the side of waking:
    /// a device woken for nothing pulls an empty page; one not woken would wait for its deadline.
    public func concerns(_ access: Access, model: DataModel) -> Bool {
        if everyone { return true }
        if isEmpty { return false }
        if access.role == .partner {
            guard let profile = access.profile.flatMap(model.partnerProfile(named:)) else { return false }
            let granted = columns.contains { table, written in
                guard let grant = profile.grant(for: table) else { return false }
                return written.contains(Merge.deletedColumn) || (grant.columns.map { $0.contains(where: written.contains) } ?? true)
            }
            guard granted else { return false }
        }
        if access.seesEveryScope { return true }
        return !scopes.isDisjoint(with: access.scopes)
    }

    mutating func formUnion(_ other: ChangeFootprint) {
        everyone = everyone || other.everyone
        scopes.formUnion(other.scopes)
        for (table, written) in other.columns { columns[table, default: []].formUnion(written) }
    }

    /// As the payload of PostgreSQL's `NOTIFY` (at most 8,000 bytes; a larger footprint wakes everyone).
    var notificationPayload: String {
        guard !everyone, let data = try? JSONEncoder().encode(self), data.count <= 7_900 else { return "*" }
        return String(decoding: data, as: UTF8.self)
    }

    /// From a `NOTIFY` payload; anything else (an older `ktd` sends none) wakes everyone.
    init(notificationPayload payload: String) {
        guard payload != "*", !payload.isEmpty, let footprint = try? JSONDecoder().decode(ChangeFootprint.self, from: Data(payload.utf8)) else {
            self = .everyone
            return
        }
        self = footprint
    }
}
