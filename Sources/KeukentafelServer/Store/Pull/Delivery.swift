import KeukentafelProtocol

/// What one pull sent a device, for the store to note (the audit's "who received this"): the rows, that
/// a device told to start over did so, and how far the feed has now been sent to it, which ends the
/// grace of writes dated before a scope change (decision 0017).
public struct Delivery: Sendable, Equatable {
    public let device: String
    /// Each row of the page once (one upsert may not touch a row twice on PostgreSQL).
    let rows: [RowReference]
    /// The device pulled from 0: it has started over.
    let restarted: Bool
    /// The feed was sent up to here, beyond what the device had been sent before.
    let informed: Int64?
    /// The device came back with this cursor, beyond the last it came back with: it applied everything up
    /// to here, the evictions and purges in it included (decision 0028).
    let confirmed: Int64?
    /// Rows the page tells the device to delete (evicted, purged), and the page's cursor: the device
    /// confirms their deletion once it comes back with a cursor that far.
    let removals: [RowReference]
    let removalSequence: Int64

    init(device: String, page: PullResponse, since cursor: Int64, informed: (before: Int64, now: Int64)?,
         confirmed: (before: Int64, now: Int64)? = nil) {
        self.device = device
        var seen = Set<RowReference>()
        rows = page.rows.map { RowReference(table: $0.table, row: $0.row) }.filter { seen.insert($0).inserted }
        restarted = cursor == 0
        self.informed = informed.flatMap { $0.now > $0.before ? $0.now : nil }
        self.confirmed = confirmed.flatMap { $0.now > $0.before ? $0.now : nil }
        var removed = Set<RowReference>()
        removals = (page.evictions + page.purges).filter { removed.insert($0).inserted }
        removalSequence = page.cursor
    }

    /// Nothing to note: an empty page to a device already told that far.
    var isEmpty: Bool { rows.isEmpty && !restarted && informed == nil && confirmed == nil && removals.isEmpty }
}
