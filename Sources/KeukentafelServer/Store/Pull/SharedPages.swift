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
    }

    /// Pages with more cells than this are not kept (a live change is a few cells; a bootstrap page thousands).
    static let maxCells = 2_000
    /// At most this many pages at once (a region's distinct scope sets and cursors).
    static let maxPages = 1_024

    private let lock = NSLock()
    private var head: Int64 = -1
    private var pages: [Key: PullResponse] = [:]
    /// The keys of `pages` without head and epoch: whether a pull could find a page, before it reads the head.
    private var shapes: Set<Key> = []
    private var hits = 0

    /// The page read earlier for `key`, if any.
    func page(for key: Key) -> PullResponse? {
        lock.withLock {
            guard key.head == head, let page = pages[key] else { return nil }
            hits += 1
            return page
        }
    }

    /// Whether a page is kept for this access and place in the feed at the current head, whichever that
    /// is (`key`'s head and epoch are not looked at): when not, a pull need not look for one.
    func mayHold(_ key: Key) -> Bool {
        var shape = key
        shape.head = 0
        shape.epoch = nil
        return lock.withLock { shapes.contains(shape) }
    }

    /// Keeps `page` for the devices that ask the same; forgets the pages of an older head.
    func keep(_ page: PullResponse, for key: Key) {
        let cells = page.rows.reduce(0) { $0 + $1.cells.count }
        guard cells <= Self.maxCells else { return }
        lock.withLock {
            // Read connections read their own snapshots: a page of an older head may come after a newer one.
            guard key.head >= head else { return }
            if key.head != head {
                head = key.head
                pages.removeAll(keepingCapacity: true)
                shapes.removeAll(keepingCapacity: true)
            }
            guard key.head == head, pages.count < Self.maxPages else { return }
            pages[key] = page
            var shape = key
            shape.head = 0
            shape.epoch = nil
            shapes.insert(shape)
        }
    }

    /// How many pulls were answered with a page read for another device (for metrics and tests).
    var sharedAnswers: Int { lock.withLock { hits } }
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
