import Foundation
import Hummingbird
import KeukentafelCompression
import NIOCore
import NIOPosix

/// Runs blocking store work on NIO's thread pool, never on the event loop or the cooperative pool.
func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await NIOThreadPool.singleton.runIfActive(work)
}

func jsonBytes(_ value: some Encodable) throws -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.withoutEscapingSlashes]
    return Array(try encoder.encode(value))
}

/// A 200 JSON response, gzip-compressed when the client accepts it and the body is worth it.
func respond(_ body: [UInt8], to request: Request) throws -> Response {
    let acceptsGzip = request.headers[.acceptEncoding]?.lowercased().contains("gzip") ?? false
    if acceptsGzip, body.count >= 1024 {
        return Response(status: .ok, headers: [.contentType: "application/json", .contentEncoding: "gzip"],
                        body: .init(byteBuffer: ByteBuffer(bytes: try Gzip.compress(body))))
    }
    return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
}

func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.withoutEscapingSlashes]
    let data = try encoder.encode(value)
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

func integerParameter(_ request: Request, _ name: String) throws -> Int64? {
    try integerParameter(request.uri.queryParameters, name)
}

/// Like `integerParameter(_:_:)`, from parameters parsed once (`URI.queryParameters` parses the query anew on every use).
func integerParameter(_ parameters: Parameters, _ name: String) throws -> Int64? {
    guard let text = parameters[name[...]] else { return nil }
    guard let value = Int64(text) else { throw APIError(.badRequest, "query parameter '\(name)' must be an integer") }
    return value
}

func describe(_ error: any Error) -> String {
    switch error {
    case DecodingError.dataCorrupted(let context), DecodingError.typeMismatch(_, let context),
         DecodingError.valueNotFound(_, let context):
        let path = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        return path.isEmpty ? context.debugDescription : "at \(path): \(context.debugDescription)"
    case DecodingError.keyNotFound(let key, let context):
        let path = (context.codingPath + [key]).map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        return "missing field \(path)"
    default:
        return "\(error)"
    }
}
