import Foundation
import Hummingbird
import KeukentafelCompression
import KeukentafelProtocol
import NIOCore

extension SyncServer {
    /// `POST /v1/push`: checks type, size and encoding, decodes the batch, and hands it to the store.
    func push(_ request: Request, context: SyncRequestContext) async throws -> Response {
        let started = ContinuousClock.now
        defer { metrics.pushDuration.recordNanoseconds((ContinuousClock.now - started).nanoseconds) }
        if let type = request.headers[.contentType], !type.lowercased().hasPrefix("application/json") {
            throw APIError(.unsupportedMediaType, "send the push as application/json", status: .unsupportedMediaType)
        }
        // A declared length over the limit is refused at once, not after waiting for a body that big.
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > configuration.maxRequestBytes {
            throw APIError(.requestTooLarge, "the body declares \(declared) bytes; at most \(configuration.maxRequestBytes) are accepted",
                           status: .contentTooLarge)
        }
        var body = try await request.body.collect(upTo: configuration.maxRequestBytes)
        switch request.headers[.contentEncoding]?.lowercased() {
        case nil, "identity": break
        case "gzip":
            let limit = configuration.maxRequestBytes * 4
            do {
                body = ByteBuffer(bytes: try body.withUnsafeReadableBytes { try Gzip.decompress($0, limit: limit) })
            } catch let error as Gzip.Error where error.tooLarge {
                throw APIError(.requestTooLarge, "the gzip body inflates beyond \(limit) bytes", status: .contentTooLarge)
            } catch {
                throw APIError(.malformedJSON, "the gzip body is corrupt or truncated: \(error)")
            }
        case let other?:
            throw APIError(.unsupportedMediaType, "Content-Encoding '\(other)' is not supported; use gzip or none",
                           status: .unsupportedMediaType)
        }
        let pushRequest: PushRequest
        do {
            pushRequest = try body.withUnsafeReadableBytes { try FeedCoding.decodePush($0) }
        } catch {
            throw APIError(.malformedJSON, "the push body is not a valid push request: \(describe(error))")
        }
        guard pushRequest.changes.count <= configuration.maxBatchChanges else {
            throw APIError(.batchTooLarge, "at most \(configuration.maxBatchChanges) changes per push, got \(pushRequest.changes.count)",
                           status: .contentTooLarge)
        }
        let device = context.device?.id ?? ""
        let access = try context.requireAccess()
        let outcome = try await blocking {
            try store.pushOutcome(pushRequest.changes, device: device, node: pushRequest.node, access: access,
                                  clientSchemaVersion: pushRequest.schemaVersion,
                                  rejectedWhileDecoding: pushRequest.rejectedWhileDecoding, resolutions: pushRequest.resolutions ?? [])
        }
        let response = outcome.response
        // Only the long-polls of devices that may see something of it wake (issue 23).
        notifier.signal(outcome.footprint)
        metrics.changes(response.results)
        RequestFacts.current?.add(cells: response.results.count)
        return try respond(FeedCoding.encode(response), to: request)
    }
}
