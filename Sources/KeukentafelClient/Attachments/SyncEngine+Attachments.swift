import Crypto
import Foundation
import KeukentafelProtocol

/// Moving attachment content (decision 0026): uploads before the push that refers to it, resumable
/// in chunks each checked by the server; downloads in ranges into a `.part` file that a cut connection
/// resumes, checked against the hash before the content counts as here.
extension SyncEngine {
    /// Uploads the content attached on this device that the server lacks, then queues again the changes
    /// the server refused for lack of it. Runs before every push.
    func uploadAttachments(into report: inout SyncReport) throws {
        let pending = try replica.contentToUpload()
        guard !pending.isEmpty else { return }
        let names = Dictionary(try replica.attachments().map { ($0.reference.sha256, $0.reference.name) }) { first, _ in first }
        for (sha256, size) in pending {
            let file = replica.attachmentPath(sha256)
            guard FileManager.default.fileExists(atPath: file) else { continue }  // removed by hand: its change stays refused
            report.attachmentBytesUploaded += try upload(sha256: sha256, size: size, file: file, name: names[sha256] ?? String(sha256.prefix(12)))
            report.attachmentsUploaded += 1
            report.attachmentChangesRequeued += try replica.markUploaded(sha256)
        }
    }

    /// Sends what the server lacks of one content, from where its copy of this device's upload ends.
    /// Returns the bytes sent.
    private func upload(sha256: String, size: Int64, file: String, name: String) throws -> Int64 {
        var status: AttachmentUpload = try call("GET", "/v1/attachments/\(sha256)/upload", query: [("size", String(size))])
        guard let handle = FileHandle(forReadingAtPath: file) else {
            throw AttachmentError(code: "no_such_file", message: "cannot read attachment content '\(file)'")
        }
        defer { try? handle.close() }
        var sent: Int64 = 0
        var retries = 0
        while !status.complete {
            try handle.seek(toOffset: UInt64(status.received))
            let chunk = try handle.read(upToCount: attachmentChunkBytes) ?? Data()
            let digest = hexString(SHA256.hash(data: chunk))
            do {
                status = try call("PUT", "/v1/attachments/\(sha256)", query: [("offset", String(status.received)), ("size", String(size))],
                                  body: chunk, headers: ["\(Self.chunkDigestHeader): \(digest)", "Content-Type: application/octet-stream"])
                sent += Int64(chunk.count)
                self.status.update { $0.uploading = true }
                onTransfer?(AttachmentTransfer(name: name, direction: .upload, done: status.received, total: size))
            } catch SyncError.server(_, let code, _) where (code == ErrorCode.uploadOffset.rawValue || code == ErrorCode.digestMismatch.rawValue)
                && retries < 3 {
                // Another process of this device went on meanwhile, or a chunk was damaged on the way: ask where it stands.
                retries += 1
                status = try call("GET", "/v1/attachments/\(sha256)/upload", query: [("size", String(size))])
            }
        }
        return sent
    }

    /// Downloads the content of `eager` attachment columns the device's rows refer to. Content the
    /// server no longer serves (the row left the device's scopes meanwhile) is counted, not fatal.
    func downloadEagerAttachments(into report: inout SyncReport) throws {
        for reference in try replica.eagerContentMissing() {
            do {
                let transfer = onTransfer
                report.attachmentBytesDownloaded += try download(reference) { done, total in
                    transfer?(AttachmentTransfer(name: reference.name, direction: .download, done: done, total: total))
                }
                report.attachmentsDownloaded += 1
            } catch SyncError.server(let status, _, _) where status == 404 {
                report.attachmentsNotAvailable += 1
            }
        }
    }

    /// Fetches one content into the replica's folder, resuming a `.part` file left by an earlier try,
    /// and checks its SHA-256. Returns the bytes fetched.
    @discardableResult
    func download(_ reference: AttachmentReference, progress: (@Sendable (Int64, Int64) -> Void)?) throws -> Int64 {
        let destination = replica.attachmentPath(reference.sha256)
        if FileManager.default.fileExists(atPath: destination) { return 0 }
        try FileManager.default.createDirectory(atPath: replica.attachmentsDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let part = destination + ".part"
        if !FileManager.default.fileExists(atPath: part) {
            _ = FileManager.default.createFile(atPath: part, contents: nil, attributes: [.posixPermissions: 0o600])
        }
        guard let output = FileHandle(forUpdatingAtPath: part) else {
            throw AttachmentError(code: "no_such_file", message: "cannot write '\(part)'")
        }
        var fetched: Int64 = 0
        // Hashed as it arrives (what an earlier try left is hashed first), so the file is not read again.
        var hasher = SHA256()
        do {
            defer { try? output.close() }
            var have = Int64(try output.seekToEnd())
            if have > reference.size {  // not ours: start over
                try output.truncate(atOffset: 0)
                have = 0
            }
            if have > 0 {
                try output.seek(toOffset: 0)
                var read: Int64 = 0
                while read < have, let chunk = try output.read(upToCount: Int(min(Int64(1 << 20), have - read))), !chunk.isEmpty {
                    hasher.update(data: chunk)
                    read += Int64(chunk.count)
                }
                _ = try output.seekToEnd()
            }
            progress?(have, reference.size)
            while have < reference.size {
                let last = min(reference.size, have + Int64(attachmentChunkBytes * 4)) - 1
                let bytes = try call("GET", "/v1/attachments/\(reference.sha256)", headers: ["Range: bytes=\(have)-\(last)"]) { $0 }
                guard !bytes.isEmpty, Int64(bytes.count) <= last - have + 1 else {
                    throw SyncError.protocolMismatch("GET /v1/attachments/\(reference.sha256): \(bytes.count) bytes for a range of \(last - have + 1)")
                }
                try output.write(contentsOf: bytes)
                hasher.update(data: bytes)
                have += Int64(bytes.count)
                fetched += Int64(bytes.count)
                progress?(have, reference.size)
            }
            try output.synchronize()
        }
        guard hexString(hasher.finalize()) == reference.sha256 else {
            try? FileManager.default.removeItem(atPath: part)
            throw AttachmentError(code: "digest_mismatch", message: "the downloaded content of '\(reference.name)' does not have its "
                + "SHA-256 \(reference.sha256.prefix(12))…; it was dropped, and the next try downloads it again")
        }
        try FileManager.default.moveItem(atPath: part, toPath: destination)
        try replica.noteDownloaded(reference)
        return fetched
    }

    /// The file of a row's attachment, downloaded first when it is not on the device yet (with
    /// `progress` as bytes so far and in all). Blocks; see the async form.
    public func openAttachment(table: String, row: String, column: String,
                               progress: (@Sendable (Int64, Int64) -> Void)? = nil) throws -> String {
        guard let reference = try replica.attachmentReference(table: table, row: row, column: column) else {
            throw AttachmentError(code: "not_attached", message: "\(table).\(column) of \(row) holds no attachment")
        }
        if let file = replica.localFile(of: reference) { return file }
        _ = try step(RequestCancellation()) { _ in try download(reference, progress: progress) }
        return replica.attachmentPath(reference.sha256)
    }

    /// `openAttachment` without blocking the caller's thread; cancelling the task stops the download,
    /// and the next call resumes it where it stopped.
    public func openAttachment(table: String, row: String, column: String,
                               progress: (@Sendable (Int64, Int64) -> Void)? = nil) async throws -> String {
        guard let reference = try replica.attachmentReference(table: table, row: row, column: column) else {
            throw AttachmentError(code: "not_attached", message: "\(table).\(column) of \(row) holds no attachment")
        }
        if let file = replica.localFile(of: reference) { return file }
        try await offThread { cancellation in _ = try self.step(cancellation) { _ in try self.download(reference, progress: progress) } }
        return replica.attachmentPath(reference.sha256)
    }

    /// The header that carries a chunk's SHA-256.
    static let chunkDigestHeader = "Keukentafel-Chunk-SHA256"

}

/// How far one attachment's transfer is (`SyncEngine.onTransfer`).
public struct AttachmentTransfer: Sendable, Equatable {
    public enum Direction: String, Sendable { case upload, download }
    /// The file name the attachment was attached with.
    public var name: String
    public var direction: Direction
    /// Bytes moved so far, and in all.
    public var done: Int64
    public var total: Int64
}
