import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// Thousands of devices long-polling `GET /v1/pull` at once, each on a keep-alive connection of its own,
/// as thin as a test client can be (NIO, one event loop) so that the server is what is measured. When a
/// pull answers, the answer's time is logged and the device asks again from the cursor it was given,
/// as the client library does.
final class LongPollClients: @unchecked Sendable {
    /// One answered pull: which device, when (monotonic nanoseconds), with what HTTP status.
    struct Answer {
        var device: Int
        var at: UInt64
        var status: UInt
    }

    private let group: MultiThreadedEventLoopGroup
    private let host: String
    private let lock = NSLock()
    private var answers: [Answer] = []
    private var channels: [any Channel] = []
    private let wait: Int

    init(host: String, wait: Int) {
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.host = host
        self.wait = wait
    }

    /// Connects devices and starts their long-polls from `cursor`; `port(i)` says which server device
    /// `i` talks to (several `ktd` processes share a PostgreSQL store). A hundred connect at once, so
    /// the server's accept backlog never overflows.
    func open(_ devices: Range<Int>, tokens: [String], cursor: Int64, port: (Int) -> Int) async throws {
        var next = devices.lowerBound
        while next < devices.upperBound {
            let batch = next..<min(devices.upperBound, next + 100)
            try await withThrowingTaskGroup(of: (any Channel).self) { tasks in
                for device in batch {
                    let handler = LongPollHandler(device: device, token: tokens[device], cursor: cursor, wait: wait, host: host, log: self)
                    let bootstrap = ClientBootstrap(group: group)
                        .channelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                        .channelInitializer { channel in
                            channel.eventLoop.makeCompletedFuture {
                                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                                try channel.pipeline.syncOperations.addHandler(handler)
                            }
                        }
                    let port = port(device)
                    tasks.addTask { try await bootstrap.connect(host: self.host, port: port).get() }
                }
                for try await channel in tasks { lock.withLock { channels.append(channel) } }
            }
            next = batch.upperBound
        }
    }

    /// The answers logged since `start` (an index into the log, `count` before a push).
    func answers(from start: Int) -> [Answer] { lock.withLock { Array(answers[min(start, answers.count)...]) } }

    /// How many answers are logged so far.
    var count: Int { lock.withLock { answers.count } }

    fileprivate func log(_ answer: Answer) { lock.withLock { answers.append(answer) } }

    /// Closes every connection and stops the event loop.
    func close() async {
        let all = lock.withLock { channels }
        for channel in all { try? await channel.close().get() }
        try? await group.shutdownGracefully()
    }
}

/// One device's connection: asks, logs the answer, asks again from the new cursor.
private final class LongPollHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    let device: Int
    let token: String
    var cursor: Int64
    let wait: Int
    let host: String
    let log: LongPollClients
    private var status: UInt = 0
    private var body: [UInt8] = []

    init(device: Int, token: String, cursor: Int64, wait: Int, host: String, log: LongPollClients) {
        self.device = device
        self.token = token
        self.cursor = cursor
        self.wait = wait
        self.host = host
        self.log = log
    }

    func channelActive(context: ChannelHandlerContext) {
        ask(context)
        context.fireChannelActive()
    }

    private func ask(_ context: ChannelHandlerContext) {
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/v1/pull?since=\(cursor)&wait=\(wait)&own=skip")
        head.headers.add(name: "Host", value: host)
        head.headers.add(name: "Authorization", value: "Bearer \(token)")
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = head.status.code
            body.removeAll(keepingCapacity: true)
        case .body(var buffer):
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            let at = DispatchTime.now().uptimeNanoseconds
            if let newCursor = Self.cursor(in: String(decoding: body, as: UTF8.self)) { cursor = newCursor }
            log.log(.init(device: device, at: at, status: status))
            if status == 200 { ask(context) }
        }
    }

    /// The `"cursor":N` of a pull's JSON answer.
    static func cursor(in text: String) -> Int64? {
        guard let range = text.range(of: "\"cursor\":") else { return nil }
        return Int64(text[range.upperBound...].prefix { $0.isNumber })
    }
}
