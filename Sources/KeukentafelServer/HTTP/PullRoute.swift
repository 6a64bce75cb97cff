import Foundation
import Hummingbird
import KeukentafelProtocol
import ServiceLifecycle

extension SyncServer {
    /// What a `GET /v1/pull` asks for, read and checked before anything waits.
    struct PullParameters: Sendable {
        var since: Int64
        var floor: Int64?
        var pageSize: Int
        var access: Access
        var device: String?
        var epoch: String?
        var proof: String?
        var skipOwn: Bool
        var deadline: ContinuousClock.Instant

        init(_ request: Request, context: SyncRequestContext, maxWaitSeconds: Int) throws {
            let query = request.uri.queryParameters
            since = try integerParameter(query, "since") ?? 0
            let limit = try integerParameter(query, "limit") ?? Int64(FeedReader.defaultPageSize)
            let wait = try integerParameter(query, "wait") ?? 0
            guard since >= 0, limit > 0, wait >= 0 else {
                throw APIError(.badRequest, "since and wait must be >= 0 and limit > 0")
            }
            floor = try integerParameter(query, "floor")
            if let floor, floor < 0 || floor > since {
                throw APIError(.badRequest, "floor is where the pass through the feed started: from 0 to since (\(since)), not \(floor)")
            }
            pageSize = Int(min(limit, Int64(FeedReader.maxPageSize)))
            access = try context.requireAccess()
            device = context.device?.id
            epoch = query["epoch"].map(String.init)
            proof = query["proof"].map(String.init)
            skipOwn = query["own"] == "skip"
            deadline = ContinuousClock.now + .seconds(min(wait, Int64(maxWaitSeconds)))
        }
    }

    /// `GET /v1/pull`: a page of the feed; with `wait`, a long-poll that parks until a push this device
    /// may see something of (issue 23) or the deadline.
    ///
    /// Thousands of these park at once, and an async function keeps its locals in a frame on the heap
    /// for as long as it waits (see `JSONErrorMiddleware.response(for:to:)`). So the part that holds a
    /// page (`answer`) and the wait (`park`) are functions of their own: while parked, only the
    /// parameters and the wait's frames are kept (`heaptrack`: 2.6 KB per parked pull before, 1.2 after).
    func pull(_ request: Request, context: SyncRequestContext) async throws -> Response {
        let started = ContinuousClock.now
        defer { metrics.pullDuration.recordNanoseconds((ContinuousClock.now - started).nanoseconds) }
        let parameters = try PullParameters(request, context: context, maxWaitSeconds: configuration.maxWaitSeconds)
        while true {
            let generation = notifier.currentGeneration
            if let response = try await answer(parameters, to: request) { return response }
            await park(parameters, after: generation)
        }
    }

    /// The page from the parameters' cursor, or nil when it holds nothing new and the long-poll may wait.
    private func answer(_ parameters: PullParameters, to request: Request) async throws -> Response? {
        let (page, delivery) = try await blocking {
            try store.pullPage(since: parameters.since, floor: parameters.floor, limit: parameters.pageSize, access: parameters.access,
                               device: parameters.device, epoch: parameters.epoch, proof: parameters.proof, skipOwn: parameters.skipOwn)
        }
        // Noted before the page goes out, with the pages of the devices woken with this one.
        if let delivery { try await deliveries.record(delivery) }
        let nothingNew = page.rows.isEmpty && page.conflicts.isEmpty && page.evictions.isEmpty && page.purges.isEmpty
            && page.cursor == parameters.since && !page.resync
        guard !nothingNew || ContinuousClock.now >= parameters.deadline || Task.isCancelled || notifier.isClosed else { return nil }
        RequestFacts.current?.add(cells: page.rows.reduce(0) { $0 + $1.cells.count })
        return try respond(try FeedCoding.encode(page), to: request)
    }

    /// Waits for a push this device may see something of, the deadline, or a graceful shutdown (which
    /// answers the parked long-polls at once instead of waiting them out).
    private func park(_ parameters: PullParameters, after generation: UInt64) async {
        await withGracefulShutdownHandler {
            let model = store.dataModel
            let access = parameters.access
            await notifier.wait(after: generation, timeout: parameters.deadline - ContinuousClock.now) { footprint in
                footprint.concerns(access, model: model)
            }
        } onGracefulShutdown: {
            notifier.close()
        }
    }
}
