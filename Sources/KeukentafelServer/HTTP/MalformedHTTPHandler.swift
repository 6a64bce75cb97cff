import Foundation
import Hummingbird
import KeukentafelProtocol
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// Answers HTTP the parser cannot read with the API's JSON error body, and closes connections whose
/// response says `Connection: close`.
///
/// Hummingbird answers a request head the parser refuses (a bad header line, a bad method) with an
/// empty 400. This handler sits behind the parser: a parse error that arrives between requests is
/// answered here, `400 malformed_http` with `{"error": …}`, and the connection closed. One that arrives
/// inside a request (a bad chunk of its body) goes on to the request, where `JSONErrorMiddleware`
/// answers it the same way. A response marked `Connection: close` (a body refused by its declared
/// length) ends the connection once written, instead of waiting for a body that may never come.
final class MalformedHTTPHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// A request's head arrived and its response's end has not been written yet.
    private var requestInProgress = false
    private var closeAfterResponse = false
    private var answered = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) { requestInProgress = true }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError, !requestInProgress else {
            context.fireErrorCaught(error)
            return
        }
        guard !answered else { return }
        answered = true
        let body = (try? JSONEncoder().encode(ErrorResponse(
            code: .malformedHTTP, message: "the request is not well-formed HTTP/1.1 (\(error)); the connection is closed"))) ?? Data()
        var head = HTTPResponse(status: .badRequest)
        head.headerFields[.contentType] = "application/json"
        head.headerFields[.contentLength] = String(body.count)
        head.headerFields[.connection] = "close"
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(context.channel.allocator.buffer(bytes: body))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            closeAfterResponse = head.headerFields[.connection]?.lowercased() == "close"
            context.write(data, promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            requestInProgress = false
            guard closeAfterResponse else { return context.write(data, promise: promise) }
            let written = context.eventLoop.makePromise(of: Void.self)
            let channel = context.channel
            written.futureResult.cascade(to: promise)
            written.futureResult.whenComplete { _ in channel.close(promise: nil) }
            context.writeAndFlush(data, promise: written)
        }
    }
}
