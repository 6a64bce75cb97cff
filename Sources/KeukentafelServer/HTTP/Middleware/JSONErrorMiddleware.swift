import Foundation
import Hummingbird
import KeukentafelProtocol
import Logging
import NIOCore
import NIOHTTP1

/// An error with a stable code that becomes a JSON error response.
struct APIError: Error {
    var code: ErrorCode
    var message: String
    var status: HTTPResponse.Status

    init(_ code: ErrorCode, _ message: String, status: HTTPResponse.Status = .badRequest) {
        self.code = code
        self.message = message
        self.status = status
    }
}

/// Turns every error into `{"error": {"code", "message"}}` with a fitting status, so no client ever
/// has to parse an HTML or empty error page.
struct JSONErrorMiddleware: RouterMiddleware {
    typealias Context = SyncRequestContext
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            return try response(for: error, to: request)
        }
    }

    /// The JSON answer to `error`. Apart from `handle` and not async: an async function's frame holds
    /// its locals for as long as it waits, and `handle` waits as long as the request does. A
    /// connection's task keeps the memory of its deepest chain of frames for as long as the
    /// connection lives, so these frames are what thousands of idle long-polls cost (issue 23;
    /// `heaptrack` put this one at 4.6 KB per connection when the answers were made here).
    func response(for error: any Error, to request: Request) throws -> Response {
        do {
            throw error
        } catch let error as APIError {
            return try errorResponse(error.code, error.message, error.status)
        } catch let refusal as StoreRefusal {
            return try errorResponse(refusal.code, refusal.message, refusal.code == .cursorAhead ? .badRequest : .conflict)
        } catch let error as HTTPParserError {
            // A body the parser cannot read (a bad chunk size, a missing CRLF): the client's fault. The
            // connection cannot carry another request, so it is closed after this answer.
            var response = try errorResponse(.malformedHTTP, "the request body is not well-formed HTTP/1.1 (\(error))", .badRequest)
            response.headers[.connection] = "close"
            return response
        } catch let error as any HTTPResponseError {
            switch error.status {
            case .notFound:
                if let allowed = Self.methods[request.uri.path], !allowed.contains(request.method) {
                    var response = try errorResponse(.methodNotAllowed, "\(request.method) is not allowed on \(request.uri.path); use "
                        + allowed.map(\.rawValue).sorted().joined(separator: " or "), .methodNotAllowed)
                    response.headers[.allow] = allowed.map(\.rawValue).sorted().joined(separator: ", ")
                    return response
                }
                return try errorResponse(.notFound, "no such endpoint: \(request.method) \(request.uri.path)", .notFound)
            case .methodNotAllowed: return try errorResponse(.methodNotAllowed, "\(request.method) is not allowed here", .methodNotAllowed)
            case .contentTooLarge: return try errorResponse(.requestTooLarge, "the request body is too large", .contentTooLarge)
            case .unauthorized: return try errorResponse(.unauthorized, "authentication required", .unauthorized)
            default: return try errorResponse(.badRequest, "\(error.status.reasonPhrase)", error.status)
            }
        } catch let error as IOError where [ECONNRESET, EPIPE].contains(error.errnoCode) {
            // The client went away in the middle of its request (a laptop's connection dropped during an
            // upload): nobody to answer, nothing wrong with the server.
            logger.info("client closed the connection during the request", metadata: ["path": "\(request.uri.path)"])
            return try errorResponse(.badRequest, "the connection closed before the request was complete", .badRequest)
        } catch {
            logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return try errorResponse(.internalError, "the server could not complete the request; it was logged", .internalServerError)
        }
    }

    func errorResponse(_ code: ErrorCode, _ message: String, _ status: HTTPResponse.Status) throws -> Response {
        var response = try json(ErrorResponse(code: code, message: message), status: status)
        // A body refused unread may still be arriving: end the connection instead of reading it.
        if status == .contentTooLarge { response.headers[.connection] = "close" }
        return response
    }

    /// The methods of every endpoint, so a wrong method answers 405 rather than 404.
    static let methods: [String: Set<HTTPRequest.Method>] = [
        "/healthz": [.get], "/readyz": [.get], "/metrics": [.get],
        "/v1/hello": [.get], "/v1/push": [.post], "/v1/views": [.post], "/v1/wiped": [.post], "/v1/pull": [.get], "/v1/history": [.get],
    ]
}
