import Foundation
import KeukentafelProtocol
@testable import KeukentafelServer
import Testing

/// The pages devices woken together share (issue 23): one of them reads, the others wait for that read
/// instead of each reading the same page.
@Suite struct SharedPagesTests {
    static let team = Access(userID: "u1", userName: "noord", role: .consultant, scopes: ["team:noord"])

    static func key(head: Int64 = 7, since: Int64 = 3) -> SharedPages.Key {
        SharedPages.Key(access: team, since: since, floor: since, limit: 5_000, head: head, epoch: "e1")
    }

    /// A page of `cells` cells of one row.
    static func page(cells: Int) -> PullResponse {
        let node = NodeID(rawValue: 42)!
        let row = FeedRow(table: "cases", row: "c1", cells: (0..<cells).map {
            FeedCell(column: "c\($0)", value: .integer(Int64($0)), version: CellVersion(hlc: UInt64($0 + 1), node: node))
        })
        return PullResponse(cursor: 7, more: false, rows: [row], conflicts: [], head: 7, serverTime: 1, schemaVersion: 1)
    }

    /// Runs `body` on a thread of its own, as the server's blocking pulls run: waiting there must not hold
    /// one of the few threads Swift's tasks run on, which the test itself needs to end the read.
    static func onThread(_ body: @escaping @Sendable () -> SharedPages.Lookup) -> Task<SharedPages.Lookup, Never> {
        Task {
            await withCheckedContinuation { continuation in
                Thread { continuation.resume(returning: body()) }.start()
            }
        }
    }

    @Test("a pull that asks while another reads the same page waits for it and is sent it, even one too big to keep")
    func aPullWaitsForThePageBeingRead() async throws {
        let pages = SharedPages()
        let key = Self.key()
        guard case .yours = pages.lookUp(key, claim: true) else { Issue.record("the first to ask reads"); return }
        #expect(pages.mayHold(key), "a pull about to read the head learns that a page is on its way")
        let waiter = Self.onThread { pages.lookUp(key, claim: true) }
        while pages.waiting < 1 { await Task.yield() }
        let big = Self.page(cells: SharedPages.maxCells + 1)
        pages.finish(key, with: big)
        guard case .found(let sent) = await waiter.value else { Issue.record("the waiting pull is sent the page read"); return }
        #expect(sent.rows == big.rows)
        #expect(pages.sharedAnswers == 1)
        // Too big to keep: a later pull reads it itself.
        guard case .yours = pages.lookUp(key, claim: true) else { Issue.record("a big page is not kept"); return }
        pages.finish(key, with: nil)
    }

    @Test("when the read fails, the pulls that waited for it read for themselves")
    func aFailedReadLeavesTheWaitersToRead() async throws {
        let pages = SharedPages()
        let key = Self.key()
        guard case .yours = pages.lookUp(key, claim: true) else { Issue.record("the first to ask reads"); return }
        let waiter = Self.onThread { pages.lookUp(key, claim: false) }
        while pages.waiting < 1 { await Task.yield() }
        pages.finish(key, with: nil)
        guard case .absent = await waiter.value else { Issue.record("nothing to send: the waiter reads itself"); return }
        #expect(pages.sharedAnswers == 0)
        #expect(!pages.mayHold(key), "nothing kept, nothing on its way")
    }

    @Test("a small page is kept for the head it was read at, and only for the same access and place in the feed")
    func aSmallPageIsKeptForItsHead() {
        let pages = SharedPages()
        let key = Self.key()
        guard case .yours = pages.lookUp(key, claim: true) else { Issue.record("the first to ask reads"); return }
        let small = Self.page(cells: 3)
        pages.finish(key, with: small)
        guard case .found(let kept) = pages.lookUp(key, claim: true) else { Issue.record("kept"); return }
        #expect(kept.rows == small.rows)
        guard case .absent = pages.lookUp(Self.key(since: 4), claim: false) else { Issue.record("another cursor"); return }
        guard case .absent = pages.lookUp(Self.key(head: 8), claim: false) else { Issue.record("another head"); return }
        // A page read at a newer head replaces those of the older.
        guard case .yours = pages.lookUp(Self.key(head: 8), claim: true) else { Issue.record("read at the new head"); return }
        pages.finish(Self.key(head: 8), with: small)
        guard case .absent = pages.lookUp(key, claim: false) else { Issue.record("the older head's page is gone"); return }
    }
}
