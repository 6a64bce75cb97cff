import Crypto
import Foundation
import KeukentafelProtocol

/// The content of attachments (decision 0026): received in chunks per device, checked against its
/// SHA-256, stored once in the store (`attachments`, `attachment_chunks`) and served in ranges to the
/// devices that may see a row referring to it.
///
/// A device's upload is its own until the whole content arrived and its hash matched: nothing of it
/// is served before, and another device uploading the same content does so itself. So a device cannot
/// learn that the server holds some content by asking, and a half upload never reaches anyone.
public struct Attachments: Sendable {
    let store: ServerStore

    init(store: ServerStore) { self.store = store }

    /// The largest chunk one `PUT` may carry.
    public static let maxChunkBytes = 4 * 1024 * 1024

    /// What the store holds of one content.
    public struct Stored: Sendable, Equatable, Codable {
        public var sha256: String
        public var size: Int64
        public var storedAt: String
        /// Rows whose current value refers to it.
        public var references: Int
    }

    /// Where `device`'s upload of `sha256` (of `size` bytes) stands. Complete when this device uploaded
    /// it whole before, or when the server holds it and the device may see a row referring to it.
    public func uploadStatus(sha256: String, size: Int64, device: String, access: Access) throws -> AttachmentUpload {
        try check(sha256: sha256, size: size)
        return try store.reader.withConnection { connection in
            if let session = try session(sha256, device, connection), session.size == size {
                if session.completed { return AttachmentUpload(sha256: sha256, size: size, received: size, complete: true) }
                return AttachmentUpload(sha256: sha256, size: size, received: session.received, complete: false)
            }
            if try storedSize(sha256, connection) == size, try visibleReference(sha256, access: access, connection) != nil {
                return AttachmentUpload(sha256: sha256, size: size, received: size, complete: true)
            }
            return AttachmentUpload(sha256: sha256, size: size, received: 0, complete: false)
        }
    }

    /// Takes one chunk of `device`'s upload: `bytes` must start where the upload stands (`offset`) and have
    /// the SHA-256 `chunkDigest`. The chunk that completes the content has the whole checked; content
    /// whose hash is not `sha256` is dropped (`digest_mismatch`) and the upload starts again from 0.
    public func receive(sha256: String, size: Int64, offset: Int64, bytes: [UInt8], chunkDigest: String, device: String,
                        access: Access) throws -> AttachmentUpload {
        try check(sha256: sha256, size: size)
        if access.role == .auditor { throw StoreRefusal(.readOnly, "an auditor's device reads only; it cannot upload attachments") }
        guard bytes.count <= Self.maxChunkBytes else {
            throw StoreRefusal(.requestTooLarge, "a chunk is at most \(Self.maxChunkBytes) bytes, got \(bytes.count)")
        }
        guard hexString(SHA256.hash(data: bytes)) == chunkDigest.lowercased() else {
            throw StoreRefusal(.digestMismatch, "the chunk at \(offset) does not have the SHA-256 it was sent with (damaged on the way); "
                + "nothing of it was kept: send it again")
        }
        let now = iso8601(store.clock())
        let answer = try store.writer.withLock { connection in
            try connection.transaction { () -> AttachmentUpload? in
                var current = try session(sha256, device, connection)
                if let known = current, known.completed, known.size == size {
                    return AttachmentUpload(sha256: sha256, size: size, received: size, complete: true)
                }
                if let known = current, known.completed, known.size != size {
                    throw StoreRefusal(.badRequest, "this device uploaded the content with this SHA-256 before, with \(known.size) bytes, not \(size)")
                }
                if let known = current, known.size != size {
                    // The same content announced with another size: one of the two is wrong; start over.
                    try connection.run("DELETE FROM attachment_chunks WHERE sha256 = ? AND owner = ?", [.text(sha256), .text(device)])
                    try connection.run("DELETE FROM attachment_uploads WHERE sha256 = ? AND device = ?", [.text(sha256), .text(device)])
                    current = nil
                }
                let received = current?.received ?? 0
                guard offset == received else {
                    throw StoreRefusal(.uploadOffset, "the server holds \(received) bytes of this upload; send the chunk that starts there, "
                        + "not at \(offset)")
                }
                guard offset + Int64(bytes.count) <= size else {
                    throw StoreRefusal(.badRequest, "the chunk ends at \(offset + Int64(bytes.count)), beyond the content's size \(size)")
                }
                let session: String
                if let known = current {
                    session = known.session
                } else {
                    session = UUID().uuidString
                    try connection.run("""
                        INSERT INTO attachment_uploads (sha256, device, size, received, started_at, session) VALUES (?, ?, ?, 0, ?, ?)
                        """, [.text(sha256), .text(device), .integer(size), .text(now), .text(session)])
                }
                // The running hash of this upload, if this process saw every chunk of it so far.
                let key = "\(sha256) \(device)"
                var running = store.uploadHashes.withLock { $0[key] }.flatMap { $0.session == session && $0.position == offset ? $0 : nil }
                if offset == 0 { running = UploadHash(session: session, position: 0, hasher: SHA256()) }
                running?.hasher.update(data: bytes)
                running?.position += Int64(bytes.count)
                if !bytes.isEmpty {
                    try connection.run("INSERT INTO attachment_chunks (sha256, owner, pos, len, bytes) VALUES (?, ?, ?, ?, ?)",
                                       [.text(sha256), .text(device), .integer(offset), .integer(Int64(bytes.count))], bytes: bytes)
                }
                let total = offset + Int64(bytes.count)
                try connection.run("UPDATE attachment_uploads SET received = ? WHERE sha256 = ? AND device = ?",
                                   [.integer(total), .text(sha256), .text(device)])
                guard total == size else {
                    if let running { store.uploadHashes.withLock { $0[key] = running } }
                    return AttachmentUpload(sha256: sha256, size: size, received: total, complete: false)
                }
                store.uploadHashes.withLock { $0[key] = nil }
                // A mismatch drops the upload and commits that, then says so.
                guard try complete(sha256: sha256, size: size, device: device, digest: running.map { hexString($0.hasher.finalize()) },
                                   connection) else { return nil }
                return AttachmentUpload(sha256: sha256, size: size, received: size, complete: true)
            }
        }
        guard let answer else {
            throw StoreRefusal(.digestMismatch, "the uploaded content does not have SHA-256 \(sha256); it was dropped: upload it again from the start")
        }
        return answer
    }

    /// Checks a finished upload's whole content and makes it the stored content (or drops it when the
    /// server held that content already).
    /// `digest`: the content's SHA-256 as this process computed it chunk by chunk, when it saw them all.
    /// Returns false, having dropped the upload, when the content is not `sha256`.
    private func complete(sha256: String, size: Int64, device: String, digest known: String?, _ connection: any StoreConnection) throws -> Bool {
        var hasher = SHA256()
        var position: Int64 = known == nil ? 0 : size
        while position < size {
            guard let chunk = try connection.bytes("SELECT bytes FROM attachment_chunks WHERE sha256 = ? AND owner = ? AND pos = ?",
                                                  [.text(sha256), .text(device), .integer(position)]), !chunk.isEmpty else {
                throw StoreError.corrupt("the upload of \(sha256) by \(device) has no chunk at \(position)")
            }
            hasher.update(data: chunk)
            position += Int64(chunk.count)
        }
        guard (known ?? hexString(hasher.finalize())) == sha256 else {
            try connection.run("DELETE FROM attachment_chunks WHERE sha256 = ? AND owner = ?", [.text(sha256), .text(device)])
            try connection.run("DELETE FROM attachment_uploads WHERE sha256 = ? AND device = ?", [.text(sha256), .text(device)])
            return false
        }
        if try storedSize(sha256, connection) == nil {
            // The chunks stay where they are (an UPDATE would rewrite every page of them): the content is this device's upload.
            try connection.run("INSERT INTO attachments (sha256, size, stored_at, owner) VALUES (?, ?, ?, ?)",
                               [.text(sha256), .integer(size), .text(iso8601(store.clock())), .text(device)])
        } else if try connection.scalar("SELECT owner FROM attachments WHERE sha256 = ?", [.text(sha256)])?.string != device {
            try connection.run("DELETE FROM attachment_chunks WHERE sha256 = ? AND owner = ?", [.text(sha256), .text(device)])
        }
        try connection.run("UPDATE attachment_uploads SET completed_at = ? WHERE sha256 = ? AND device = ?",
                           [.text(iso8601(store.clock())), .text(sha256), .text(device)])
        return true
    }

    /// The reference (media type, name) through which `access` may download `sha256`, and the content's
    /// size; `nil` when no row it may see refers to it, or the content is not on the server.
    public func downloadable(sha256: String, access: Access) throws -> (reference: AttachmentReference, size: Int64)? {
        guard isSHA256Hex(sha256) else { return nil }
        return try store.reader.withConnection { connection in
            guard let size = try storedSize(sha256, connection), let reference = try visibleReference(sha256, access: access, connection) else {
                return nil
            }
            return (reference, size)
        }
    }

    /// Stored content from `offset` to the end of the chunk that holds it, at most `limit` bytes: each
    /// chunk is read once, whatever the size of the slices asked for.
    public func read(sha256: String, from offset: Int64, limit: Int) throws -> [UInt8] {
        try store.withAttachmentReader { connection in
            let rows = try connection.query("""
                SELECT c.pos, c.owner FROM attachments a JOIN attachment_chunks c ON c.sha256 = a.sha256 AND c.owner = a.owner
                WHERE a.sha256 = ? AND c.pos <= ? AND c.pos + c.len > ? ORDER BY c.pos LIMIT 1
                """, [.text(sha256), .integer(offset), .integer(offset)])
            guard let position = rows.first?[0].int64, let owner = rows.first?[1].string,
                  let chunk = try connection.bytes("SELECT bytes FROM attachment_chunks WHERE sha256 = ? AND owner = ? AND pos = ?",
                                                   [.text(sha256), .text(owner), .integer(position)]) else { return [] }
            let start = Int(offset - position)
            if start == 0, chunk.count <= limit { return chunk }
            return Array(chunk[start..<min(chunk.count, start + limit)])
        }
    }

    /// Whether `device` may make a cell refer to `sha256`: the content is on the server and this device
    /// uploaded it, or may see a row that refers to it already (a photo copied from one row to another).
    func mayRefer(to sha256: String, device: String?, access: Access, _ connection: any StoreConnection) throws -> Bool {
        guard try storedSize(sha256, connection) != nil else { return false }
        guard let device, access != .system else { return true }
        if let session = try session(sha256, device, connection), session.completed { return true }
        return try visibleReference(sha256, access: access, connection) != nil
    }

    /// Every stored content, with how many current rows refer to it.
    public func list() throws -> [Stored] {
        try store.reader.withConnection { connection in
            try connection.query("SELECT sha256, size, stored_at FROM attachments ORDER BY stored_at, sha256").map { row in
                let sha = row[0].string ?? ""
                return Stored(sha256: sha, size: row[1].int64 ?? 0, storedAt: row[2].string ?? "",
                              references: try referringRows(sha, connection).count)
            }
        }
    }

    /// What the store holds, for `ktd admin attachments`.
    public struct Summary: Sendable, Codable {
        /// Stored content, each with the number of current rows referring to it.
        public var stored: [Stored]
        /// Content no current row refers to (replaced files, rows deleted; old history may still name it).
        public var orphans: [Stored]
        /// Content rows refer to that the store does not hold (only possible through hand edits or damage).
        public var missing: [String]
        /// Uploads not finished, oldest first.
        public var unfinished: [Unfinished]
        public var totalBytes: Int64
    }

    /// An upload a device started and did not finish.
    public struct Unfinished: Sendable, Codable {
        public var sha256: String
        public var device: String
        public var size: Int64
        public var received: Int64
        public var startedAt: String
    }

    /// Stored content, orphans, content that is missing, and unfinished uploads.
    public func summary() throws -> Summary {
        let stored = try list()
        let missing = try store.reader.withConnection { connection -> [String] in
            let present = Set(stored.map(\.sha256))
            let values = try connection.query("SELECT DISTINCT value FROM row_links WHERE value >= ? AND value < ?",
                                              [.text("{\"sha256\":\""), .text("{\"sha256\"<")])
            return Set(values.compactMap { $0[0].string.flatMap(AttachmentReference.init(cellText:))?.sha256 }).subtracting(present).sorted()
        }
        return Summary(stored: stored, orphans: stored.filter { $0.references == 0 }, missing: missing, unfinished: try unfinishedUploads(),
                       totalBytes: stored.reduce(0) { $0 + $1.size })
    }

    /// Removes content no current row refers to, and uploads left unfinished for more than `staleDays`
    /// days. Noted in the audit trail. Returns (contents removed, their bytes, unfinished uploads removed).
    public func removeOrphans(staleDays: Int = 7, actor: String) throws -> (contents: Int, bytes: Int64, uploads: Int) {
        let orphans = try list().filter { $0.references == 0 }
        let cutoff = iso8601(store.clock() - Int64(staleDays) * 86_400_000)
        return try store.writer.withLock { connection in
            try connection.transaction {
                let removed = try removeUnreferenced(Set(orphans.map(\.sha256)), connection)
                let stale = try connection.query("SELECT sha256, device FROM attachment_uploads WHERE completed_at IS NULL AND started_at < ?",
                                                 [.text(cutoff)])
                for upload in stale {
                    try connection.run("DELETE FROM attachment_chunks WHERE sha256 = ? AND owner = ?", [upload[0], upload[1]])
                    try connection.run("DELETE FROM attachment_uploads WHERE sha256 = ? AND device = ?", [upload[0], upload[1]])
                }
                let bytes = orphans.reduce(Int64(0)) { $0 + $1.size }
                try store.audit.append(connection, actor: actor, action: "attachments.remove-orphans", subject: nil,
                                       detail: "\(removed) contents (\(bytes) bytes), \(stale.count) unfinished uploads older than \(staleDays) days")
                return (removed, bytes, stale.count)
            }
        }
    }

    /// Uploads not finished, oldest first.
    public func unfinishedUploads() throws -> [Unfinished] {
        try store.reader.withConnection { connection in
            try connection.query("""
                SELECT sha256, device, size, received, started_at FROM attachment_uploads WHERE completed_at IS NULL ORDER BY started_at
                """).map {
                Unfinished(sha256: $0[0].string ?? "", device: $0[1].string ?? "", size: $0[2].int64 ?? 0, received: $0[3].int64 ?? 0,
                           startedAt: $0[4].string ?? "")
            }
        }
    }

    /// Removes stored content that no current row refers to any more, with its uploads' records. The
    /// erasure calls it for the content its rows referred to; inside the caller's write transaction.
    @discardableResult
    func removeUnreferenced(_ candidates: Set<String>, _ connection: any StoreConnection) throws -> Int {
        var removed = 0
        for sha in candidates.sorted() where try referringRows(sha, connection).isEmpty {
            try connection.run("DELETE FROM attachment_chunks WHERE sha256 = ?", [.text(sha)])
            try connection.run("DELETE FROM attachments WHERE sha256 = ?", [.text(sha)])
            removed += connection.changes
            try connection.run("DELETE FROM attachment_uploads WHERE sha256 = ?", [.text(sha)])
        }
        return removed
    }

    /// The content the attachment cells of these rows refer to, now or earlier in their history.
    func referencedContent(of rows: [RowReference], _ connection: any StoreConnection) throws -> Set<String> {
        var found = Set<String>()
        for row in rows {
            guard let table = store.dataModel.table(named: row.table) else { continue }
            let columns = Set(table.columns.filter { $0.type == .attachment }.map(\.name))
            guard !columns.isEmpty else { continue }
            for column in columns.sorted() {
                if let text = try Records(connection, store: store).value(table: row.table, row: row.row, column: column)?.string,
                   let reference = AttachmentReference(cellText: text) {
                    found.insert(reference.sha256)
                }
            }
            let read = try connection.cachedStatement("SELECT changes FROM history WHERE tbl = ? AND row_id = ?")
            try read.bind([.text(row.table), .text(row.row)])
            while try read.step() {
                for change in try read.withBytes(0, { try HistoryCoding.decode($0, columns: store.columnNames) }) ?? [] where columns.contains(change.column) {
                    if let text = change.value.string, let reference = AttachmentReference(cellText: text) { found.insert(reference.sha256) }
                }
            }
            read.reset()
        }
        return found
    }

    // MARK: Parts

    private func check(sha256: String, size: Int64) throws {
        guard isSHA256Hex(sha256) else {
            throw StoreRefusal(.badRequest, "'\(sha256.prefix(80))' is not a SHA-256 (64 lowercase hexadecimal digits)")
        }
        let largest = store.dataModel.largestAllowedAttachment
        guard size >= 0, size <= largest else {
            throw StoreRefusal(.requestTooLarge, largest == 0 ? "the data model has no attachment columns"
                : "an attachment is at most \(largest) bytes (the data model's largest maxBytes), not \(size)")
        }
    }

    private func session(_ sha256: String, _ device: String, _ connection: any StoreConnection) throws
        -> (size: Int64, received: Int64, completed: Bool, session: String)? {
        let rows = try connection.query("SELECT size, received, completed_at, session FROM attachment_uploads WHERE sha256 = ? AND device = ?",
                                        [.text(sha256), .text(device)])
        guard let row = rows.first else { return nil }
        return (row[0].int64 ?? 0, row[1].int64 ?? 0, row[2] != .null, row[3].string ?? "")
    }

    private func storedSize(_ sha256: String, _ connection: any StoreConnection) throws -> Int64? {
        try connection.scalar("SELECT size FROM attachments WHERE sha256 = ?", [.text(sha256)])?.int64
    }

    /// Rows whose current value of an attachment column refers to `sha256`, found in `row_links` by
    /// the canonical text's beginning.
    private func referringRows(_ sha256: String, _ connection: any StoreConnection) throws -> [(table: String, row: String, column: String, value: String)] {
        let prefix = AttachmentReference.cellTextPrefix(sha256: sha256)
        // ',' ends the prefix; '-' is the next character, so [prefix, prefix with '-') holds exactly the texts that begin with it.
        let upper = String(prefix.dropLast()) + "-"
        return try connection.query("SELECT tbl, row_id, col, value FROM row_links WHERE value >= ? AND value < ?",
                                    [.text(prefix), .text(upper)]).compactMap { row in
            guard let table = row[0].string, let id = row[1].string, let column = row[2].string, let value = row[3].string,
                  store.dataModel.table(named: table)?.column(named: column)?.type == .attachment else { return nil }
            return (table, id, column, value)
        }
    }

    private func visibleReference(_ sha256: String, access: Access, _ connection: any StoreConnection) throws -> AttachmentReference? {
        var visibility = Visibility(store: store, access: access, connection: connection)
        for row in try referringRows(sha256, connection) {
            guard try visibility.canSee(table: row.table, row: row.row, column: row.column),
                  let reference = AttachmentReference(cellText: row.value) else { continue }
            return reference
        }
        return nil
    }
}

/// The SHA-256 of an upload's bytes so far, kept by the process that received them: the chunk that
/// completes the upload then needs no read of the whole content. `session` ties it to one upload (a
/// restarted upload gets a new one), `position` says how far it got; anything else falls back to reading.
struct UploadHash {
    var session: String
    var position: Int64
    var hasher: SHA256
}
