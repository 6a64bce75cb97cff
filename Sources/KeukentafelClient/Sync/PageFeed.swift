import Foundation
import KeukentafelProtocol

/// Pull requests in a row on a thread of their own. The request for the page after each one goes
/// out as soon as that page's body has arrived and says where it ends (`FeedCoding.peekPull`); the
/// page is then decoded on this thread too, while the pull loop applies the pages before it in order
/// (decoding was a fifth of the applying thread's time in a bootstrap). At most `depth` pages wait.
final class PageFeed: @unchecked Sendable {
    struct Fetched {
        let query: [(String, String)]
        /// The decoded page; the request's own error (a `SyncError`), or `protocolMismatch` for a body
        /// that is not a page.
        let page: Result<PullResponse, any Error>
    }

    private let condition = NSCondition()
    // Guarded by `condition`:
    private var ready: [Fetched] = []
    private var stopped = false
    private var producing = true

    init(engine: SyncEngine, first query: [(String, String)], epoch: String?, depth: Int = 2) {
        Thread { [self] in produce(engine: engine, first: query, epoch: epoch, depth: depth) }.start()
    }

    private func produce(engine: SyncEngine, first: [(String, String)], epoch knownEpoch: String?, depth: Int) {
        var query = first
        var epoch = knownEpoch
        let skipOwn = first.contains { $0 == ("own", "skip") }
        while true {
            condition.lock()
            while ready.count >= depth && !stopped { condition.wait() }
            if stopped {
                producing = false
                condition.broadcast()
                condition.unlock()
                return
            }
            condition.unlock()
            let body = Result { try engine.fetchPageBody(query) }
            // The next request, if this page says there is more and nothing makes the loop start over.
            var next: [(String, String)]?
            if case .success(let data) = body, let peeked = FeedCoding.peekPull(data), peeked.more, !peeked.resync {
                epoch = peeked.epoch ?? epoch
                next = engine.pullQuery(since: peeked.cursor, floor: peeked.floor ?? peeked.cursor, epoch: epoch, skipOwn: skipOwn)
            }
            let page = body.flatMap { data in
                Result { try FeedCoding.decodePull(data) }.mapError { SyncError.protocolMismatch("GET /v1/pull: \($0)") as any Error }
            }
            condition.lock()
            ready.append(Fetched(query: query, page: page))
            if next == nil { producing = false }
            condition.broadcast()
            condition.unlock()
            guard let next else { return }
            query = next
        }
    }

    /// The next fetched page in order, waiting for it; nil if the feed fetched nothing more.
    func next() -> Fetched? {
        condition.lock()
        defer { condition.unlock() }
        while ready.isEmpty && producing { condition.wait() }
        guard !ready.isEmpty else { return nil }
        let fetched = ready.removeFirst()
        condition.broadcast()
        return fetched
    }

    /// Stops fetching and waits for a request in flight to end; what was fetched is dropped.
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        while producing { condition.wait() }
        ready.removeAll()
        condition.unlock()
    }
}
