import Foundation
import KeukentafelCompression
import KeukentafelProtocol

/// Pushes the outbox and pulls the change feed of one replica.
///
/// Every step is safe to repeat: a push whose answer was lost is sent again with the same change
/// ids and the server applies it once; a page is applied together with its cursor, so an
/// interrupted pull resumes where the last complete page ended.
public final class SyncEngine: @unchecked Sendable {
    public let replica: Replica
    let transport: any SyncTransport
    public var pushBatchSize = 2_000
    /// Cells per pulled page unless `pageSize` says otherwise (the server allows up to 50,000).
    public static let defaultPageSize = 5_000
    public var pageSize = SyncEngine.defaultPageSize
    /// Bytes of attachment content per upload request (the server takes up to 4 MiB); a download asks
    /// for four times as much per request. Smaller chunks lose less to a cut connection.
    public var attachmentChunkBytes = 1 << 20
    /// A device clock within this distance of the server's counts as right (for re-stamping).
    public var saneClockSkewMilliseconds: Int64 = 60_000
    /// Called after each applied page (progress of a long bootstrap).
    public var onPage: (@Sendable (SyncReport) -> Void)?
    /// Called as attachment content moves during a sync: which file, bytes so far, bytes in all.
    public var onTransfer: (@Sendable (AttachmentTransfer) -> Void)?
    private let lock = NSLock()
    private let queue = DispatchQueue(label: "keukentafel.sync-engine")
    private let activeLock = NSLock()
    /// Ends the requests of the step in flight (`cancel()`, task cancellation, `disconnect()`).
    private var active: RequestCancellation?
    /// While set, ends a long-poll (only that request) early: a local write wants to be pushed.
    private var longPollWake: RequestCancellation?
    /// The continuous sync started by `connect()`.
    let connectionLock = NSLock()
    var connection: ConnectedSync?
    /// This engine has fetched the eager attachments and tidied the attachment folder since it started
    /// (only touched inside a step, which run one at a time).
    var attachmentsChecked = false

    /// An engine talking to the server the replica was created for, over libcurl. Certificates are
    /// verified; `caBundlePath` (default: the one given to `kt init`) adds trusted authorities.
    public convenience init(replica: Replica, caBundlePath: String? = nil) throws {
        self.init(replica: replica, transport: CurlTransport(baseURL: try replica.serverURL, token: try replica.token,
                                                             caBundlePath: try caBundlePath ?? replica.caBundlePath))
    }

    public init(replica: Replica, transport: any SyncTransport) {
        self.replica = replica
        self.transport = transport
        var initial = SyncStatus()
        initial.hasSynced = (try? replica.hasSynced) ?? false
        initial.lastSyncedAt = (try? replica.lastSyncedAt) ?? nil
        initial.pendingChanges = (try? replica.outboxCounts().pending) ?? 0
        status = StatusBroadcaster(initial)
    }

    /// The status an app shows: connection, uploading, downloading with progress, has synced, last error.
    let status: StatusBroadcaster
    public var currentStatus: SyncStatus { status.current }

    /// The current status at once, then every change to it, for as long as it is iterated.
    public func statusUpdates() -> AsyncStream<SyncStatus> { status.stream() }

    /// Local changes the server refuses, as they are refused (they stay on the device).
    public func refusedChanges() -> AsyncStream<RefusedChange> { status.refusals() }

    /// Runs one public step (sync, push, pull) with the status kept up to date around it.
    private func tracked(_ body: () throws -> SyncReport) throws -> SyncReport {
        status.update { if $0.connection != .connected { $0.connection = .connecting } }
        do {
            let report = try body()
            let hasSynced = (try? replica.hasSynced) ?? false
            let pending = (try? replica.outboxCounts().pending) ?? 0
            status.update {
                $0.connection = .connected
                $0.uploading = false
                $0.downloading = false
                $0.hasSynced = hasSynced
                $0.pendingChanges = pending
                $0.lastSyncedAt = Date()
                $0.lastError = nil
            }
            return report
        } catch is CancellationError {
            status.update {
                $0.uploading = false
                $0.downloading = false
            }
            throw CancellationError()
        } catch {
            let failure = SyncFailure(error)
            status.update {
                if failure.code == "unreachable" { $0.connection = .offline }
                $0.uploading = false
                $0.downloading = false
                $0.lastError = failure
            }
            throw error
        }
    }

    /// Push, then pull until the feed is exhausted. Blocks the calling thread; from Swift concurrency
    /// use `try await sync()`, which does not.
    @discardableResult
    public func sync() throws -> SyncReport {
        try step(RequestCancellation()) { try syncSteps(into: &$0) }
    }

    /// Only push the outbox (no pull). Blocks.
    @discardableResult
    public func push() throws -> SyncReport {
        try step(RequestCancellation()) { try pushAll(into: &$0) }
    }

    /// Only pull (no push). With `waitSeconds` the first request is a long-poll that returns as soon as
    /// something changes on the server (or after that many seconds). Blocks.
    @discardableResult
    public func pull(waitSeconds: Int = 0) throws -> SyncReport {
        try step(RequestCancellation()) { try pullAll(into: &$0, waitSeconds: waitSeconds) }
    }

    /// Push, then pull until the feed is exhausted, without blocking the caller's thread. Cancelling the
    /// calling task stops the request in flight at once and throws `CancellationError`; what was already
    /// pushed or applied stays, and the next sync goes on from there.
    @discardableResult
    public func sync() async throws -> SyncReport {
        try await offThread { cancellation in try self.step(cancellation) { try self.syncSteps(into: &$0) } }
    }

    /// `push()` without blocking the caller's thread; cancellable like `sync()`.
    @discardableResult
    public func push() async throws -> SyncReport {
        try await offThread { cancellation in try self.step(cancellation) { try self.pushAll(into: &$0) } }
    }

    /// `pull(waitSeconds:)` without blocking the caller's thread; cancellable like `sync()`, also
    /// while it long-polls.
    @discardableResult
    public func pull(waitSeconds: Int = 0) async throws -> SyncReport {
        try await offThread { cancellation in try self.step(cancellation) { try self.pullAll(into: &$0, waitSeconds: waitSeconds) } }
    }

    @available(*, deprecated, renamed: "sync()", message: "use try await sync(): it does not start a thread and can be cancelled")
    @discardableResult
    public func syncInBackground() async throws -> SyncReport { try await sync() }

    /// Stops the step in flight (a sync, push or pull from any thread) at once: its request is ended and
    /// it throws `CancellationError`. Steps started later are not affected.
    public func cancel() {
        activeLock.withLock { active }?.cancel()
    }

    /// The engine's blocking work runs on one serial queue of its own (its steps run one at a time
    /// anyway), so an async caller neither blocks a thread of Swift's cooperative pool nor starts a
    /// thread per call. Task cancellation is handed to the step's `RequestCancellation`.
    func offThread<T: Sendable>(_ work: @escaping @Sendable (RequestCancellation) throws -> T) async throws -> T {
        let cancellation = RequestCancellation()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                queue.async { continuation.resume(with: Result { try work(cancellation) }) }
            }
        } onCancel: {
            cancellation.cancel()
        }
    }

    /// One step at a time per engine: a push and a pull of the same replica never interleave. The
    /// status is kept up to date around it, and `cancellation` ends its requests.
    /// `longPollWake` also ends a long-poll of this step (not its other requests).
    func step(_ cancellation: RequestCancellation, longPollWake wake: RequestCancellation? = nil,
              _ body: (inout SyncReport) throws -> Void) throws -> SyncReport {
        lock.lock()
        defer { lock.unlock() }
        activeLock.withLock {
            active = cancellation
            longPollWake = wake
        }
        defer {
            activeLock.withLock {
                active = nil
                longPollWake = nil
            }
        }
        try cancellation.check()
        return try tracked {
            var report = SyncReport()
            try body(&report)
            return report
        }
    }

    private func syncSteps(into report: inout SyncReport) throws {
        do {
            try pushAll(into: &report)
            try pullAll(into: &report)
            // After a restore of the server's store, this device's own writes it lacked are queued again.
            if report.pulled.changesRequeued > 0 { try pushAll(into: &report) }
            report.stillRejected = try replica.outboxCounts().rejected
            report.serverSchemaVersion = try replica.serverSchemaVersion
            try replica.locked {
                try replica.setMeta("last_sync_at", String(replica.clock()))
                try replica.setMeta("last_error", nil)
            }
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            try? replica.locked { try replica.setMeta("last_error", "\(error)") }
            throw error
        }
    }

    func pushAll(into report: inout SyncReport) throws {
        // Content first: the server refuses a cell that refers to content it does not hold.
        try uploadAttachments(into: &report)
        try pushChanges(into: &report)
        // The views after the changes: the changes matter more when the network is scarce.
        try sendViews(into: &report)
    }

    /// Pushes the outbox and the decisions on conflicts.
    private func pushChanges(into report: inout SyncReport) throws {
        var restampTried = false
        let resolutions = try replica.pendingResolutions()
        // Counted once: counting the outbox is a scan of it, and a push of 350,000 changes sends
        // 175 batches. After each batch the status says what is left of that count.
        var waiting: Int?
        // Pipelined (issue 17): while the server applies batch k, this thread reads and encodes batch
        // k + 1, and records k's answers while k + 1 is on its way. The server still receives one
        // batch at a time, in order; k + 1 is sent only after k was answered in full.
        if var current = try preparePush(after: 0, resolutions: resolutions) {
            waiting = try replica.outboxCounts().pending
            var inFlight = InFlightPush { [self, current] in try sendPush(current) }
            var restampedNow = 0
            while true {
                status.update {
                    $0.uploading = true
                    $0.pendingChanges = waiting ?? 0
                }
                let next: PreparedPush?
                let response: PushResponse
                do {
                    next = try current.batch.last.flatMap { try preparePush(after: $0.seq, resolutions: []) }
                    response = try inFlight.wait()
                } catch {
                    _ = try? inFlight.wait()  // never leave a request running; it is sent again next time
                    throw error
                }
                status.update { $0.connection = .connected }
                let answeredAll = response.results.count >= current.batch.count && !current.batch.isEmpty
                var following: InFlightPush?
                if answeredAll, let next {
                    following = InFlightPush { [self] in try sendPush(next) }
                }
                do {
                    try record(current, response, waiting: &waiting, report: &report)
                    // A clock that was ahead and has since been set right: give its refused changes fresh versions.
                    if !restampTried, abs(replica.clock() - response.serverTime) <= saneClockSkewMilliseconds {
                        restampTried = true
                        restampedNow = try replica.restampClockAheadChanges(serverTime: response.serverTime, maxSkew: saneClockSkewMilliseconds)
                        report.restamped += restampedNow
                    }
                } catch {
                    _ = try? following?.wait()
                    throw error
                }
                guard let following, let next else { break }  // the server answered part, or nothing is left
                inFlight = following
                current = next
            }
            if restampedNow > 0, try !replica.pendingChanges(limit: 1).isEmpty {
                try pushChanges(into: &report)  // the re-stamped changes, which sort before where this push ended
                return
            }
        }
        if !restampTried, try replica.outboxCounts().clockAhead > 0 {
            // Nothing pending was pushed, so ask the server for its time before re-stamping.
            let hello: HelloResponse = try call("GET", "/v1/hello")
            if abs(replica.clock() - hello.serverTime) <= saneClockSkewMilliseconds {
                report.restamped += try replica.restampClockAheadChanges(serverTime: hello.serverTime, maxSkew: saneClockSkewMilliseconds)
                if report.restamped > 0 { try pushChanges(into: &report) }
            }
        }
    }

    /// A batch of the outbox, encoded for `POST /v1/push`.
    struct PreparedPush: Sendable {
        var batch: [(seq: Int64, change: Change)]
        var resolutions: [Resolution]
        var body: Data
        var headers: [String]
    }

    /// The next batch after outbox entry `after`, read and encoded; nil when nothing is left.
    /// Decisions on conflicts travel with the first batch, after the changes they go with.
    func preparePush(after: Int64, resolutions: [Resolution]) throws -> PreparedPush? {
        let batch = try replica.pendingChanges(limit: pushBatchSize, after: after)
        if batch.isEmpty && resolutions.isEmpty { return nil }
        let request = PushRequest(node: replica.node, schemaVersion: replica.dataModel.version, changes: batch.map(\.change),
                                  resolutions: resolutions.isEmpty ? nil : resolutions)
        let encoded = FeedCoding.encode(request)
        if encoded.count >= 4096 {
            return PreparedPush(batch: batch, resolutions: resolutions, body: Data(try Gzip.compress(encoded)), headers: ["Content-Encoding: gzip"])
        }
        return PreparedPush(batch: batch, resolutions: resolutions, body: Data(encoded), headers: [])
    }

    func sendPush(_ prepared: PreparedPush) throws -> PushResponse {
        try call("POST", "/v1/push", body: prepared.body, headers: prepared.headers, decode: FeedCoding.decodePushResponse)
    }

    /// Records the server's answers to a batch in the replica and the report.
    private func record(_ pushed: PreparedPush, _ response: PushResponse, waiting: inout Int?, report: inout SyncReport) throws {
        let counts = try replica.acknowledge(pushed.batch, results: response.results)
        reportRefusals(pushed.batch, response.results)
        if !pushed.resolutions.isEmpty {
            try replica.acknowledgeResolutions(pushed.resolutions.map(\.conflict), refused: response.refusedResolutions ?? [])
            report.resolutionsSent += pushed.resolutions.count
            report.resolutionsRefused += response.refusedResolutions?.count ?? 0
        }
        report.pushed.add(counts)
        waiting = max(0, (waiting ?? 0) - response.results.count)  // refused ones no longer wait either
    }

    /// Pulls pages until the feed is exhausted, each applied with its cursor in one transaction.
    ///
    /// The requests run ahead on a thread of their own (`PageFeed`): the page after each one is
    /// requested as soon as its cursor is known, before it is decoded and applied, so the server's
    /// work, the transfer, decoding and applying overlap (decision 0015). A page fetched ahead is
    /// used only if its request is exactly the one this loop would send after the apply; otherwise
    /// (a resync began, the epoch changed) the feed is dropped and started again from the replica.
    /// Only the first request long-polls.
    func pullAll(into report: inout SyncReport, waitSeconds: Int = 0) throws {
        var query = try nextPullQuery(waitSeconds: waitSeconds, withProof: true)
        var feed = PageFeed(engine: self, first: query, epoch: try replica.serverEpoch)
        // Where this pass through the feed started, for the progress of a long download.
        var passStart = try replica.cursorFloor ?? replica.cursor
        // A page that removed rows (evicted, purged) is followed by one more request: the cursor it sends
        // tells the server the rows are gone (its deletion receipt, decision 0028).
        var receiptSent = false
        defer { feed.stop() }  // no request outlives the pull that started it
        while true {
            let fetched = feed.next()
            guard let fetched, fetched.query.elementsEqual(query, by: ==) else {
                feed.stop()
                feed = PageFeed(engine: self, first: query, epoch: try replica.serverEpoch)
                continue
            }
            let page: PullResponse
            do {
                page = try fetched.page.get()  // the request's own error, already a SyncError
            } catch SyncError.server(_, ErrorCode.cursorAhead.rawValue, _) where report.pages == 0 {
                // The server never handed out this cursor (a replica file put back by hand, or a server
                // store restored without its proofs): start the feed over, keeping this device's own writes.
                try replica.startOverAfterRefusedCursor()
                query = try nextPullQuery(waitSeconds: 0, withProof: true)
                feed.stop()
                feed = PageFeed(engine: self, first: query, epoch: try replica.serverEpoch)
                continue
            }
            let counts = try replica.apply(page)
            if page.resync { passStart = 0 }
            report.pages += 1
            report.pulled.cellsReceived += counts.cellsReceived
            report.pulled.cellsApplied += counts.cellsApplied
            report.pulled.rowsDeleted += counts.rowsDeleted
            report.pulled.conflicts += counts.conflicts
            report.pulled.rowsEvicted += counts.rowsEvicted
            report.pulled.rowsPurged += counts.rowsPurged
            report.pulled.changesRequeued += counts.changesRequeued
            report.cursor = page.cursor
            let received = report.pulled.cellsReceived
            status.update {
                $0.connection = .connected
                $0.downloading = page.more
                $0.cellsDownloaded = received
                if let head = page.head, head > passStart, page.cursor > passStart, page.more {
                    let fraction = Double(page.cursor - passStart) / Double(head - passStart)
                    $0.cellsExpected = max(received, Int(Double(received) / min(1, fraction)))
                } else if !page.more {
                    $0.cellsExpected = received
                }
            }
            onPage?(report)
            if !page.more {
                guard !receiptSent, !(page.evictions.isEmpty && page.purges.isEmpty) else { break }
                receiptSent = true
            }
            query = try nextPullQuery(waitSeconds: 0)
        }
        // Attachments: after a pull that changed rows, and once per engine (a download that failed before
        // is tried again); a long-poll answered with nothing new does not walk the attachment columns.
        let pulled = report.pulled
        let changed = pulled.cellsApplied + pulled.rowsDeleted + pulled.rowsEvicted + pulled.rowsPurged + pulled.changesRequeued > 0
        guard changed || !attachmentsChecked, !replica.attachmentColumns().isEmpty else { return }
        try downloadEagerAttachments(into: &report)
        // Rows evicted, purged or given another file leave content no row refers to.
        report.attachmentsRemoved += try replica.removeUnreferencedContent()
        attachmentsChecked = report.attachmentsNotAvailable == 0
    }

    /// The pull request that continues from the replica's cursor and epoch. The first request of a
    /// pull carries the cursor's proof; the pages after it continue from cursors the server just gave.
    /// Outside a resync the server leaves out the cells whose current version this device wrote (it
    /// has them); a resync needs every row it may see, its own included, to tell what it lost.
    private func nextPullQuery(waitSeconds: Int, withProof: Bool = false) throws -> [(String, String)] {
        let cursor = try replica.cursor
        var query = pullQuery(since: cursor, floor: try replica.cursorFloor ?? cursor, epoch: try replica.serverEpoch,
                              skipOwn: try replica.resyncMode == nil)
        if withProof, let proof = try replica.cursorProof { query.append(("proof", proof)) }
        if waitSeconds > 0 { query.append(("wait", String(waitSeconds))) }
        return query
    }

    /// `floor`: where this pass through the feed started (`PullResponse.floor`), the cursor itself on
    /// a pass's first page.
    func pullQuery(since cursor: Int64, floor: Int64, epoch: String?, skipOwn: Bool) -> [(String, String)] {
        var query = [("since", String(cursor)), ("floor", String(min(floor, cursor))), ("limit", String(pageSize))]
        if let epoch { query.append(("epoch", epoch)) }
        if skipOwn { query.append(("own", "skip")) }
        return query
    }

    /// Tells listeners of the changes the server refused in one push.
    private func reportRefusals(_ batch: [(seq: Int64, change: Change)], _ results: [ChangeResult]) {
        let refused = results.filter { $0.status == .rejected }
        guard !refused.isEmpty else { return }
        var byID: [String: Change] = [:]
        for (_, change) in batch { byID[change.id] = change }
        status.refused(refused.compactMap { result in
            byID[result.id].map {
                RefusedChange(table: $0.table, row: $0.row, column: $0.column, code: result.code?.rawValue ?? "rejected", message: result.message ?? "")
            }
        })
    }

    /// The body of one pull request, after the status checks every call gets.
    func fetchPageBody(_ query: [(String, String)]) throws -> Data {
        try call("GET", "/v1/pull", query: query) { $0 }
    }

    /// Every accepted write of a row (or one of its cells), from the server.
    public func history(table: String, row: String, column: String? = nil) throws -> [HistoryEntry] {
        let query = [("table", table), ("row", row)] + (column.map { [("column", $0)] } ?? [])
        let response: HistoryResponse = try call("GET", "/v1/history", query: query)
        return response.entries
    }

    func call<T: Decodable>(_ method: String, _ path: String, query: [(String, String)] = [], body: Data? = nil,
                            headers: [String] = []) throws -> T {
        try call(method, path, query: query, body: body, headers: headers) { try JSONDecoder().decode(T.self, from: $0) }
    }

    /// Tells the server this lost device wiped its replica (deletion receipts, decision 0028). Sent
    /// once, without retries: the replica is gone, and with it any memory of having to send it.
    private func sendWipeReceipt(_ receipt: WipeReceipt) -> Bool {
        guard let body = try? JSONEncoder().encode(receipt),
              let exchange = try? transport.send(method: "POST", path: "/v1/wiped", query: [], body: body, headers: [])
        else { return false }
        return (200..<300).contains(exchange.status)
    }

    func call<T>(_ method: String, _ path: String, query: [(String, String)] = [], body: Data? = nil, headers: [String] = [],
                 decode: (Data) throws -> T) throws -> T {
        let exchange: HTTPExchange
        let (step, wake) = activeLock.withLock { (active, longPollWake) }
        // A long-poll also ends when a local write wants to go out; any other request only with the step.
        let isLongPoll = query.contains { $0.0 == "wait" }
        let (cancellation, release) = RequestCancellation.any([step, isLongPoll ? wake : nil].compactMap { $0 })
        defer { release() }
        do {
            exchange = try transport.send(method: method, path: path, query: query, body: body, headers: headers,
                                          cancellation: cancellation)
        } catch let error as TransportError {
            throw SyncError.unreachable(error.message)
        }
        guard (200..<300).contains(exchange.status) else {
            if let error = try? JSONDecoder().decode(ErrorResponse.self, from: exchange.body) {
                if error.error.code == .deviceLost {
                    let encrypted = replica.isEncrypted
                    var outcome: String
                    let receipt: WipeReceipt
                    do {
                        try replica.wipe()
                        outcome = "the replica at \(replica.path) was deleted"
                        receipt = WipeReceipt(keyDestroyed: encrypted ? true : nil, filesDeleted: true)
                    } catch let failure as ReplicaError where failure.code == "damaged_key_file" {
                        outcome = "the replica at \(replica.path) could not be wiped: \(failure)"
                        receipt = WipeReceipt(keyDestroyed: false, filesDeleted: true, problem: "\(failure)")
                    } catch {
                        outcome = "the replica at \(replica.path) could not be fully deleted (\(error.localizedDescription))"
                            + (encrypted ? "; its key was destroyed first, so what is left cannot be read" : "")
                        receipt = WipeReceipt(keyDestroyed: encrypted ? true : nil, filesDeleted: false, problem: error.localizedDescription)
                    }
                    if sendWipeReceipt(receipt) { outcome += "; the office was told" }
                    throw SyncError.server(status: exchange.status, code: error.error.code.rawValue, message: error.error.message + "; " + outcome)
                }
                throw SyncError.server(status: exchange.status, code: error.error.code.rawValue, message: error.error.message)
            }
            throw SyncError.server(status: exchange.status, code: "http_\(exchange.status)",
                                   message: String(decoding: exchange.body.prefix(200), as: UTF8.self))
        }
        do {
            return try decode(exchange.body)
        } catch {
            throw SyncError.protocolMismatch("\(method) \(path): \(error)")
        }
    }
}
