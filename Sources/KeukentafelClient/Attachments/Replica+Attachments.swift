import Crypto
import Foundation
import KeukentafelProtocol
import KeukentafelSQLite

/// An attachment as the device knows it: the reference a row holds, and whether its content is here.
public struct AttachmentStatus: Sendable, Equatable {
    public var reference: AttachmentReference
    /// The file holding the content on this device, or `nil` while it is not downloaded.
    public var file: String?
    /// Attached on this device and not yet on the server.
    public var waitingForUpload: Bool
    /// The rows that refer to it: `table.column` and row id.
    public var rows: [(table: String, column: String, row: String)]

    public static func == (a: Self, b: Self) -> Bool {
        a.reference == b.reference && a.file == b.file && a.waitingForUpload == b.waitingForUpload
            && a.rows.map { "\($0.table).\($0.column) \($0.row)" } == b.rows.map { "\($0.table).\($0.column) \($0.row)" }
    }
}

/// Why a file cannot be attached or opened, with a stable code.
public struct AttachmentError: Error, CustomStringConvertible, Sendable {
    /// `no_such_file`, `not_an_attachment_column`, `no_such_row`, `invalid_value`, `value_too_long`,
    /// `digest_mismatch`, `not_attached`.
    public var code: String
    public var message: String
    public var description: String { "\(message) [\(code)]" }
}

/// Attachments on the device (decision 0026): content lives in a folder next to the replica file that
/// the replica owns (`<replica>.attachments/`), one file per SHA-256; a row's attachment cell holds the
/// reference. Attaching writes the file first and the cell after, so a cell never refers to content
/// the device lacks; content leaves the folder once no row and no unsent change refers to it
/// (evictions, purges, replaced files).
extension Replica {
    /// The folder holding this replica's attachment content.
    public var attachmentsDirectory: String { path + ".attachments" }

    /// The file of some content in the folder (whether or not it is there).
    func attachmentPath(_ sha256: String) -> String { (attachmentsDirectory as NSString).appendingPathComponent(sha256) }

    /// Attaches a file to an existing row's attachment column: the content is copied into the
    /// replica's folder (read once, hashed on the way) and the cell set to its reference, captured like
    /// any local write. The next sync uploads the content, then pushes the cell. `mediaType` is guessed
    /// from the file name's extension when not given; `name` defaults to the file's own name.
    @discardableResult
    public func attach(file: String, table: String, row: String, column: String, mediaType: String? = nil,
                       name: String? = nil) throws -> AttachmentReference {
        if let problem = dataModel.addressProblem(table: table, row: row, column: column) {
            throw AttachmentError(code: "not_in_model", message: problem)
        }
        return try locked {
            try connection.transaction {
                let reference = try importAttachment(file: file, table: table, column: column, mediaType: mediaType, name: name)
                try connection.run("UPDATE \(ReplicaSchema.quote(table)) SET \(ReplicaSchema.quote(column)) = ? WHERE id = ?",
                                   [reference.cellValue, .text(row)])
                guard connection.changes == 1 else {
                    throw AttachmentError(code: "no_such_row", message: "no row \(row) in \(table) on this device; create the row first "
                        + "(or use importAttachment and insert the row with the reference)")
                }
                return reference
            }
        }
    }

    /// Copies a file into the replica's folder for `table.column` and returns its reference, checked
    /// against the column's media types and size limit, for a row the app inserts itself:
    /// `INSERT INTO documents (id, case_id, file) VALUES (?, ?, ?)` with `reference.cellValue`.
    /// Content imported and not referred to by any row within a day is removed again.
    public func importAttachment(file: String, table: String, column: String, mediaType: String? = nil,
                                 name: String? = nil) throws -> AttachmentReference {
        guard let model = dataModel.table(named: table) else {
            throw AttachmentError(code: "not_in_model", message: dataModel.addressProblem(table: table, row: RowID.new()) ?? "no table '\(table)'")
        }
        guard let columnModel = model.column(named: column), columnModel.type == .attachment else {
            let choices = model.columns.filter { $0.type == .attachment }.map(\.name)
            throw AttachmentError(code: "not_an_attachment_column", message: "\(table).\(column) is not an attachment column"
                + (choices.isEmpty ? "; \(table) has none" : "; attachment columns of \(table): \(choices.joined(separator: ", "))"))
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw AttachmentError(code: "no_such_file", message: "no file at '\(file)'")
        }
        let fileName = name ?? (file as NSString).lastPathComponent
        let type = (mediaType ?? AttachmentReference.mediaType(forFileName: fileName)).lowercased()
        // Copied and hashed in one pass, into a temporary name in the folder; renamed to its hash after.
        let (sha256, size, temporary) = try copyIntoFolder(file)
        defer { try? FileManager.default.removeItem(atPath: temporary) }
        let reference = AttachmentReference(sha256: sha256, size: size, mediaType: type, name: fileName)
        if let problem = reference.problem { throw AttachmentError(code: "invalid_value", message: "\(table).\(column): \(problem)") }
        if let rejection = dataModel.validate(reference.cellValue, for: columnModel, in: model) {
            throw AttachmentError(code: rejection.code.rawValue, message: rejection.message)
        }
        try locked {
            let destination = attachmentPath(sha256)
            if !FileManager.default.fileExists(atPath: destination) { try FileManager.default.moveItem(atPath: temporary, toPath: destination) }
            try connection.run("""
                INSERT INTO _kt_attachments (sha256, size, state, added_at) VALUES (?, ?, 'upload', ?) ON CONFLICT (sha256) DO NOTHING
                """, [.text(sha256), .integer(size), .integer(clock())])
        }
        return reference
    }

    /// The attachments the device's rows refer to, with where their content is. `missingOnly`: only
    /// those whose content is not on this device.
    public func attachments(missingOnly: Bool = false) throws -> [AttachmentStatus] {
        try locked {
            let waiting = Set(try connection.query("SELECT sha256 FROM _kt_attachments WHERE state = 'upload'").compactMap { $0[0].string })
            var byContent: [String: AttachmentStatus] = [:]
            for (table, column) in attachmentColumns() {
                let rows = try connection.query("""
                    SELECT id, \(ReplicaSchema.quote(column)) FROM \(ReplicaSchema.quote(table)) WHERE \(ReplicaSchema.quote(column)) IS NOT NULL
                    ORDER BY id
                    """)
                for row in rows {
                    guard let id = row[0].string, let text = row[1].string, let reference = AttachmentReference(cellText: text) else { continue }
                    let file = attachmentPath(reference.sha256)
                    var status = byContent[reference.sha256] ?? AttachmentStatus(
                        reference: reference, file: FileManager.default.fileExists(atPath: file) ? file : nil,
                        waitingForUpload: waiting.contains(reference.sha256), rows: [])
                    status.rows.append((table, column, id))
                    byContent[reference.sha256] = status
                }
            }
            return byContent.values.filter { !missingOnly || $0.file == nil }.sorted { ($0.reference.name, $0.reference.sha256) < ($1.reference.name, $1.reference.sha256) }
        }
    }

    /// The reference a row's attachment cell holds, or `nil` when it is empty.
    public func attachmentReference(table: String, row: String, column: String) throws -> AttachmentReference? {
        if let problem = dataModel.addressProblem(table: table, row: row, column: column) {
            throw AttachmentError(code: "not_in_model", message: problem)
        }
        guard dataModel.table(named: table)?.column(named: column)?.type == .attachment else {
            throw AttachmentError(code: "not_an_attachment_column", message: "\(table).\(column) is not an attachment column")
        }
        return try locked {
            let rows = try connection.query("SELECT \(ReplicaSchema.quote(column)) FROM \(ReplicaSchema.quote(table)) WHERE id = ?", [.text(row)])
            guard let first = rows.first else {
                throw AttachmentError(code: "no_such_row", message: "no row \(row) in \(table) on this device")
            }
            return first[0].string.flatMap(AttachmentReference.init(cellText:))
        }
    }

    /// The file of an attachment's content on this device, or `nil` while it is not here.
    public func localFile(of reference: AttachmentReference) -> String? {
        let file = attachmentPath(reference.sha256)
        return FileManager.default.fileExists(atPath: file) ? file : nil
    }

    // MARK: For the sync engine

    /// Every `(table, column)` of an attachment column.
    func attachmentColumns() -> [(String, String)] {
        dataModel.tables.flatMap { table in table.columns.filter { $0.type == .attachment }.map { (table.name, $0.name) } }
    }

    /// Content attached here and not yet on the server: (sha256, size).
    func contentToUpload() throws -> [(sha256: String, size: Int64)] {
        try locked {
            try connection.query("SELECT sha256, size FROM _kt_attachments WHERE state = 'upload' ORDER BY added_at, sha256")
                .compactMap { row in row[0].string.map { ($0, row[1].int64 ?? 0) } }
        }
    }

    /// Notes that the server holds some content, and queues again the changes it refused for lack of it.
    func markUploaded(_ sha256: String) throws -> Int {
        try locked {
            try connection.transaction {
                try connection.run("UPDATE _kt_attachments SET state = 'stored' WHERE sha256 = ?", [.text(sha256)])
                try connection.run("""
                    UPDATE _kt_outbox SET state = 'pending', code = NULL, message = NULL
                    WHERE state = 'rejected' AND code = 'attachment_missing' AND substr(value, 1, ?) = ?
                    """, [.integer(Int64(AttachmentReference.cellTextPrefix(sha256: sha256).utf8.count)),
                          .text(AttachmentReference.cellTextPrefix(sha256: sha256))])
                return connection.changes
            }
        }
    }

    /// References in `eager` columns whose content is not on this device.
    func eagerContentMissing() throws -> [AttachmentReference] {
        let eager = Set(dataModel.tables.flatMap { table in
            table.columns.filter { $0.type == .attachment && $0.download == .eager }.map { "\(table.name).\($0.name)" }
        })
        guard !eager.isEmpty else { return [] }
        return try attachments(missingOnly: true).filter { status in status.rows.contains { eager.contains("\($0.table).\($0.column)") } }
            .map(\.reference)
    }

    /// Notes downloaded content (its file is in the folder already).
    func noteDownloaded(_ reference: AttachmentReference) throws {
        try locked {
            try connection.run("""
                INSERT INTO _kt_attachments (sha256, size, state, added_at) VALUES (?, ?, 'stored', ?) ON CONFLICT (sha256) DO NOTHING
                """, [.text(reference.sha256), .integer(reference.size), .integer(clock())])
        }
    }

    /// Deletes content no row and no unsent change refers to any more (a row evicted or purged, a file
    /// replaced by another), and downloads left half. Returns how many files went.
    @discardableResult
    func removeUnreferencedContent() throws -> Int {
        try locked {
            var referenced = Set<String>()
            for (table, column) in attachmentColumns() {
                let values = try connection.query("""
                    SELECT DISTINCT \(ReplicaSchema.quote(column)) FROM \(ReplicaSchema.quote(table)) WHERE \(ReplicaSchema.quote(column)) IS NOT NULL
                    """)
                for value in values { if let text = value[0].string, let reference = AttachmentReference(cellText: text) { referenced.insert(reference.sha256) } }
            }
            for value in try connection.query("SELECT value FROM _kt_outbox WHERE substr(value, 1, 11) = '{\"sha256\":\"'") {
                if let text = value[0].string, let reference = AttachmentReference(cellText: text) { referenced.insert(reference.sha256) }
            }
            // Imported for a row the app is about to insert: kept for a day.
            let recent = try connection.query("SELECT sha256 FROM _kt_attachments WHERE state = 'upload' AND added_at > ?",
                                              [.integer(clock() - 24 * 3600 * 1000)])
            for row in recent { if let sha = row[0].string { referenced.insert(sha) } }
            let files = (try? FileManager.default.contentsOfDirectory(atPath: attachmentsDirectory)) ?? []
            var removed = 0
            for file in files {
                let path = (attachmentsDirectory as NSString).appendingPathComponent(file)
                if file.hasPrefix(".") {
                    // ".incoming-…": a file being attached right now, or left by a crash an hour or more ago.
                    let modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
                    if let modified, modified < Date(timeIntervalSinceNow: -3600) { try? FileManager.default.removeItem(atPath: path) }
                    continue
                }
                let sha = file.hasSuffix(".part") ? String(file.dropLast(5)) : file
                guard !referenced.contains(sha) else { continue }
                try? FileManager.default.removeItem(atPath: path)
                if !file.hasSuffix(".part") { removed += 1 }
            }
            let known = try connection.query("SELECT sha256 FROM _kt_attachments").compactMap { $0[0].string }
            for sha in known where !referenced.contains(sha) {
                try connection.run("DELETE FROM _kt_attachments WHERE sha256 = ?", [.text(sha)])
            }
            return removed
        }
    }

    /// Copies `file` into the folder under a temporary name, hashing it on the way: (sha256, size, temporary path).
    private func copyIntoFolder(_ file: String) throws -> (String, Int64, String) {
        try FileManager.default.createDirectory(atPath: attachmentsDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let temporary = (attachmentsDirectory as NSString).appendingPathComponent(".incoming-\(UUID().uuidString)")
        guard let input = FileHandle(forReadingAtPath: file) else {
            throw AttachmentError(code: "no_such_file", message: "cannot read '\(file)'")
        }
        defer { try? input.close() }
        guard FileManager.default.createFile(atPath: temporary, contents: nil, attributes: [.posixPermissions: 0o600]),
              let output = FileHandle(forWritingAtPath: temporary) else {
            throw AttachmentError(code: "no_such_file", message: "cannot write into '\(attachmentsDirectory)'")
        }
        var hasher = SHA256()
        var size: Int64 = 0
        do {
            defer { try? output.close() }
            while let chunk = try input.read(upToCount: 1 << 20), !chunk.isEmpty {
                hasher.update(data: chunk)
                try output.write(contentsOf: chunk)
                size += Int64(chunk.count)
            }
            try output.synchronize()
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
        return (hexString(hasher.finalize()), size, temporary)
    }
}
