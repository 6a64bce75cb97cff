import Foundation
import Hummingbird
import HTTPTypes
import KeukentafelProtocol
import NIOCore

extension SyncServer {
    /// The header that carries a chunk's SHA-256 (lowercase hex) on `PUT /v1/attachments/{sha256}`.
    public static let chunkDigestHeader = "Keukentafel-Chunk-SHA256"
    /// The most of an attachment a download reads from the store at a time: a whole chunk (reading
    /// part of one reads all of it).
    static let downloadSlice = Attachments.maxChunkBytes

    /// The attachment routes (decision 0026): an upload's state, a chunk of an upload, a download.
    func addAttachmentRoutes(to v1: RouterGroup<SyncRequestContext>) {
        v1.get("attachments/:sha256/upload") { request, context in
            let sha = try context.parameters.require("sha256")
            guard let size = try integerParameter(request, "size") else {
                throw APIError(.badRequest, "say the content's size: ?size=BYTES")
            }
            let access = try context.requireAccess()
            let device = context.device?.id ?? ""
            let status = try await attachmentCall { try store.attachmentUploadStatus(sha256: sha, size: size, device: device, access: access) }
            return try json(status)
        }
        v1.put("attachments/:sha256") { request, context in
            let sha = try context.parameters.require("sha256")
            guard let size = try integerParameter(request, "size"), let offset = try integerParameter(request, "offset") else {
                throw APIError(.badRequest, "a chunk needs ?offset=WHERE_IT_STARTS&size=WHOLE_CONTENT_SIZE")
            }
            guard let digest = request.headers[HTTPField.Name(Self.chunkDigestHeader)!] else {
                throw APIError(.badRequest, "send the chunk's SHA-256 (lowercase hex) in the \(Self.chunkDigestHeader) header")
            }
            if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > Attachments.maxChunkBytes {
                throw APIError(.requestTooLarge, "a chunk is at most \(Attachments.maxChunkBytes) bytes; this one declares \(declared)",
                               status: .contentTooLarge)
            }
            let body = try await request.body.collect(upTo: Attachments.maxChunkBytes)
            let bytes = Array(body.readableBytesView)
            let access = try context.requireAccess()
            let device = context.device?.id ?? ""
            let status = try await attachmentCall {
                try store.receiveAttachmentChunk(sha256: sha, size: size, offset: offset, bytes: bytes, chunkDigest: digest,
                                                 device: device, access: access)
            }
            RequestFacts.current?.add(cells: 0)
            return try json(status)
        }
        v1.get("attachments/:sha256") { request, context in
            let sha = try context.parameters.require("sha256")
            guard isSHA256Hex(sha) else {
                throw APIError(.badRequest, "'\(sha.prefix(80))' is not a SHA-256 (64 lowercase hexadecimal digits)")
            }
            let access = try context.requireAccess()
            guard let found = try await blocking({ try store.downloadableAttachment(sha256: sha, access: access) }) else {
                // The same answer whether the content is absent or only not visible: nothing to learn by asking.
                throw APIError(.notFound, "no attachment \(sha.prefix(64)) that this device may see", status: .notFound)
            }
            let size = found.size
            var start: Int64 = 0
            var end = size - 1
            var status = HTTPResponse.Status.ok
            if let range = request.headers[.range] {
                guard let parsed = Self.byteRange(range, size: size) else {
                    return Response(status: .rangeNotSatisfiable, headers: [.contentRange: "bytes */\(size)"])
                }
                (start, end) = parsed
                status = .partialContent
            }
            var headers: HTTPFields = [
                .contentType: found.reference.mediaType, .acceptRanges: "bytes", .eTag: "\"\(sha)\"",
                .cacheControl: "private, no-store",
            ]
            if status == .partialContent { headers[.contentRange] = "bytes \(start)-\(end)/\(size)" }
            let (first, last) = (start, end)
            let length = max(0, last - first + 1)
            return Response(status: status, headers: headers, body: ResponseBody(contentLength: Int(length)) { [store] writer in
                var position = first
                while position <= last {
                    let want = Int(min(Int64(Self.downloadSlice), last - position + 1))
                    let at = position
                    let slice = try await blocking { try store.readAttachment(sha256: sha, from: at, limit: want) }
                    guard !slice.isEmpty else { throw StoreError.corrupt("attachment \(sha) ends before its size \(size)") }
                    try await writer.write(ByteBuffer(bytes: slice))
                    position += Int64(slice.count)
                }
                try await writer.finish(nil)
            })
        }
    }

    /// Runs an attachment call and answers its refusals with fitting statuses.
    private func attachmentCall<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        do {
            return try await blocking(work)
        } catch let refusal as StoreRefusal {
            switch refusal.code {
            case .digestMismatch: throw APIError(refusal.code, refusal.message, status: .unprocessableContent)
            case .uploadOffset: throw APIError(refusal.code, refusal.message, status: .conflict)
            case .requestTooLarge: throw APIError(refusal.code, refusal.message, status: .contentTooLarge)
            case .readOnly, .notPermitted: throw APIError(refusal.code, refusal.message, status: .forbidden)
            default: throw APIError(refusal.code, refusal.message, status: .badRequest)
            }
        }
    }

    /// `bytes=N-`, `bytes=N-M` or `bytes=-K` (the last K) within `size`; `nil` if unsatisfiable or not understood.
    static func byteRange(_ header: String, size: Int64) -> (Int64, Int64)? {
        guard header.hasPrefix("bytes="), !header.contains(",") else { return nil }
        let spec = header.dropFirst("bytes=".count)
        let parts = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        if parts[0].isEmpty {
            guard let last = Int64(parts[1]), last > 0, size > 0 else { return nil }
            return (max(0, size - last), size - 1)
        }
        guard let first = Int64(parts[0]), first >= 0, first < size else { return nil }
        if parts[1].isEmpty { return (first, size - 1) }
        guard let last = Int64(parts[1]), last >= first else { return nil }
        return (first, min(last, size - 1))
    }
}
