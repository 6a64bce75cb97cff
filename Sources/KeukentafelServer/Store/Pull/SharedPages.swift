import Foundation
import KeukentafelProtocol

/// Pages of the feed that devices with the same access and cursor share (issue 23): when a push wakes
/// a team's two hundred long-polls, they all ask for the page from the same cursor at the same head,
/// and the answer depends on nothing else, so the store reads it once.
///
/// A page is a function of who asks (role, scopes, partner profile: never the user or the device),
/// where the pass stands (`since`, `floor`, `limit`), and the feed's state, which the head names:
/// every change to rows, scopes of rows, conflicts, evictions and purges takes a sequence number, and a
/// restore starts a new epoch. What
/// is the device's own (starting over, its node's cells left out, its deliveries) is done per device
/// around the shared page. Kept for the current head only, and small pages only: a bootstrap's pages
/// are big and rarely asked for twice.
final class SharedPages: @unchecked Sendable {
    struct Key: Hashable {
        var role: Role
        var scopes: [String]
        var profile: String?
        var since: Int64
        var floor: Int64
        var limit: Int
        var head: Int64
        var epoch: String?

        init(access: Access, since: Int64, floor: Int64, limit: Int, head: Int64, epoch: String?) {
            role = access.role
            scopes = access.scopes.sorted()
            profile = access.profile
            self.since = since
            self.floor = floor
            self.limit = limit
            self.head = head
            self.epoch = epoch
        }

        /// The key without head and epoch: the same access and place in the feed at any head.
        var shape: Key {
            var shape = self
            shape.head = 0
            shape.epoch = nil
            return shape
        }
    }

    /// Pages with more cells than this are not kept (a live change is a few cells; a bootstrap page thousands).
    static let maxCells = 2_000
    /// At most this many pages at once (a region's distinct scope sets and cursors).
    static let maxPages = 1_024

    /// Guards everything below; pulls that wait for a page being read wait on it.
    private let condition = NSCondition()
    private var head: Int64 = -1
    private var pages: [Key: PullResponse] = [:]
    /// The keys of `pages` without head and epoch: whether a pull could find a page, before it reads the head.
    private var shapes: Set<Key> = []
    /// Pages being read now, and how many of them each shape has (so `mayHold` sees them too).
    private var flights: [Key: Flight] = [:]
    private var flyingShapes: [Key: Int] = [:]
    private var hits = 0
    private var waiters = 0

    /// A page one pull reads while others with the same key wait for it.
    private final class Flight {
        var done = false
        var page: PullResponse?
    }

    /// What a pull that looked for a page should do.
    enum Lookup {
        /// Send this page (read for another device with the same key).
        case found(PullResponse)
        /// Read the page and hand it over with `finish(_:with:)`, also when reading fails: others wait for it.
        case yours
        /// Nothing kept or being read: read the page alone.
        case absent
    }

    /// The page read for `key`, or being read for it now by another pull (then this waits for that read,
    /// blocking its thread as the connection pools do: a push wakes a team's devices at the same moment,
    /// and without waiting each would read the same page). With `claim`, a pull that finds nothing is
    /// told to read the page for the others (`.yours`). A page read for others is handed to those waiting
    /// however big it is; only small ones are kept for later pulls.
    ///
    /// The pull that claims never waits for another, so waiting cannot deadlock.
    func lookUp(_ key: Key, claim: Bool) -> Lookup {
        condition.lock()
        defer { condition.unlock() }
        if key.head == head, let page = pages[key] {
            hits += 1
            return .found(page)
        }
        if let flight = flights[key] {
            waiters += 1
            while !flight.done { condition.wait() }
            waiters -= 1
            guard let page = flight.page else { return .absent }
            hits += 1
            return .found(page)
        }
        guard claim else { return .absent }
        flights[key] = Flight()
        flyingShapes[key.shape, default: 0] += 1
        return .yours
    }

    /// Ends the read `lookUp` gave this pull: hands `page` (nil: the read failed or gave no page to share)
    /// to the pulls waiting for it, and keeps it if it is small.
    func finish(_ key: Key, with page: PullResponse?) {
        condition.lock()
        if let flight = flights.removeValue(forKey: key) {
            flight.page = page
            flight.done = true
            let shape = key.shape
            if let count = flyingShapes[shape], count > 1 { flyingShapes[shape] = count - 1 } else { flyingShapes[shape] = nil }
        }
        if let page { keepLocked(page, for: key) }
        condition.unlock()
        condition.broadcast()
    }

    /// Whether a page is kept, or being read, for this access and place in the feed at the current head,
    /// whichever that is (`key`'s head and epoch are not looked at): when not, a pull need not look for one.
    func mayHold(_ key: Key) -> Bool {
        let shape = key.shape
        return condition.withLock { shapes.contains(shape) || flyingShapes[shape] != nil }
    }

    /// Keeps `page` for the devices that ask the same; forgets the pages of an older head.
    private func keepLocked(_ page: PullResponse, for key: Key) {
        let cells = page.rows.reduce(0) { $0 + $1.cells.count }
        guard cells <= Self.maxCells else { return }
        // Read connections read their own snapshots: a page of an older head may come after a newer one.
        guard key.head >= head else { return }
        if key.head != head {
            head = key.head
            pages.removeAll(keepingCapacity: true)
            shapes.removeAll(keepingCapacity: true)
        }
        guard pages.count < Self.maxPages else { return }
        pages[key] = page
        shapes.insert(key.shape)
    }

    /// How many pulls were answered with a page read for another device (for metrics and tests).
    var sharedAnswers: Int { condition.withLock { hits } }

    /// Pulls waiting now for a page another is reading (for tests).
    var waiting: Int { condition.withLock { waiters } }
}

extension PullResponse {
    /// The page without the cells `node` wrote (no echo: that device has them); rows left empty go.
    func leavingOut(cellsOf node: NodeID) -> PullResponse {
        var page = self
        page.rows = rows.compactMap { row in
            guard row.cells.contains(where: { $0.version.node == node }) else { return row }
            var row = row
            row.cells.removeAll { $0.version.node == node }
            return row.cells.isEmpty ? nil : row
        }
        return page
    }
}
