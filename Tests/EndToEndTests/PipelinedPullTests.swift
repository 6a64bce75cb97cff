import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelTesting
import Testing

/// A long pull requests the next pages while it decodes and applies the current one (`SyncEngine.pullAll`, `PageFeed`).
@Suite("Pipelined pull")
struct PipelinedPullTests {
    @Test("the next page is requested while the current one is applied, and every page is fetched and applied once, in order")
    func nextPageIsFetchedDuringApply() async throws {
        let server = try await TestServer.start()
        let laptop = try server.replica("laptop"), office = try server.replica("office")
        for i in 0..<12 { _ = try seedCase(on: laptop, name: "Inwoner \(i)") }
        try await laptop.sync()
        let serverCells = Int(try server.store.inspection.counts()["cells"] ?? 0)
        let pageSize = 10
        let pages = try feedPages(server.store, pageSize: pageSize)
        let fullPages = pages.count - 1  // each of these says `more`, so the page after it is fetched ahead
        #expect(fullPages >= 5)

        let recorder = PullRecorder(inner: CurlTransport(baseURL: server.url, token: try office.token))
        let pagesStarted = Counter()
        let overlapped = Counter()
        office.afterApplyingRow = { index in
            guard index == 0 else { return }
            let page = pagesStarted.increment()
            // Still inside page `page`'s transaction: the request for the page after it must arrive now
            // (it is recorded as it is sent, so this waits for a thread to start, not for the server).
            guard page <= fullPages, overlapped.current == page - 1 else { return }  // after one miss, fail without waiting more
            if recorder.waitForPulls(page + 1, seconds: 10) { _ = overlapped.increment() }
        }
        let report = try await office.sync(transport: recorder, pageSize: pageSize)

        #expect(overlapped.current == fullPages, "every full page overlapped the request for the next")
        let requested = recorder.sinceValues
        #expect(requested == [0] + pages.dropLast().map(\.cursor), "each page requested once, in cursor order")
        #expect(report.pages == fullPages + 1)
        #expect(report.pulled.cellsApplied == serverCells)
        #expect(try office.knownCellCount() == serverCells)
        #expect(try office.snapshot() == laptop.snapshot())
        await server.stop()
    }

    @Test("a page fetched ahead of one that fails to apply is dropped; the next sync starts from the last complete page")
    func prefetchedPageOfAFailedPullIsDropped() async throws {
        let server = try await TestServer.start()
        let laptop = try server.replica("laptop"), office = try server.replica("office")
        for i in 0..<6 { _ = try seedCase(on: laptop, name: "Inwoner \(i)") }
        try await laptop.sync()
        let serverCells = Int(try server.store.inspection.counts()["cells"] ?? 0)
        let firstPageEnds = try feedPages(server.store, pageSize: 10)[0].cursor

        let recorder = PullRecorder(inner: CurlTransport(baseURL: server.url, token: try office.token))
        office.afterApplyingRow = { index in
            // The first page's request for page 2 is under way; then the first page fails.
            _ = recorder.waitForPulls(2, seconds: 10)
            throw TestFailure("disk full while applying page 1")
        }
        await #expect(throws: TestFailure.self) { try await office.sync(transport: recorder, pageSize: 10) }
        let requested = recorder.sinceValues
        #expect(Array(requested.prefix(2)) == [0, firstPageEnds] && requested == requested.sorted() && Set(requested).count == requested.count,
                "page 2 (perhaps 3) was fetched ahead, each once, in order")
        #expect(try office.cursor == 0, "and not applied: nothing of the failed page or the one after it")
        #expect(try office.knownCellCount() == 0)

        office.afterApplyingRow = nil
        let report = try await office.sync(pageSize: 10)
        #expect(report.pulled.cellsApplied == serverCells)
        #expect(try office.snapshot() == laptop.snapshot())
        await server.stop()
    }
}

/// Forwards to the real transport and records the cursor (`since`) of every pull request.
final class PullRecorder: SyncTransport, @unchecked Sendable {
    let inner: CurlTransport
    private let condition = NSCondition()
    private var since: [Int64] = []

    init(inner: CurlTransport) { self.inner = inner }

    var sinceValues: [Int64] { condition.withLock { since } }

    /// Waits until `count` pull requests were sent (or `seconds` passed); true if they were.
    func waitForPulls(_ count: Int, seconds: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: seconds)
        condition.lock()
        defer { condition.unlock() }
        while since.count < count {
            if !condition.wait(until: deadline) { return since.count >= count }
        }
        return true
    }

    func send(method: String, path: String, query: [(String, String)], body: Data?, headers: [String]) throws -> HTTPExchange {
        if path == "/v1/pull", let value = query.first(where: { $0.0 == "since" }).flatMap({ Int64($0.1) }) {
            condition.withLock {
                since.append(value)
                condition.broadcast()
            }
        }
        return try inner.send(method: method, path: path, query: query, body: body, headers: headers)
    }
}
