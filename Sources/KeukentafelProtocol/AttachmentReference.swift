import Foundation

/// What a cell of an `attachment` column holds: the content's SHA-256, its size, media type and file
/// name, never the bytes (decision 0026). The bytes travel apart, content-addressed by the hash
/// (`PUT`/`GET /v1/attachments/{sha256}`), so the cell feed stays small and a photo is stored once
/// however many rows point to it.
///
/// In a cell the reference is one canonical JSON text, keys in this order:
/// `{"sha256":"<64 hex>","size":123,"type":"image/jpeg","name":"brief.jpg"}`. Canonical, so that the
/// store finds every row pointing to some content by the text's beginning.
public struct AttachmentReference: Sendable, Hashable, Codable {
    /// The SHA-256 of the content, 64 lowercase hexadecimal digits.
    public var sha256: String
    /// The content's size in bytes.
    public var size: Int64
    /// The media type, e.g. `image/jpeg` or `application/pdf`, lowercase.
    public var mediaType: String
    /// The file name the content had when it was attached (no folders).
    public var name: String

    public init(sha256: String, size: Int64, mediaType: String, name: String) {
        self.sha256 = sha256
        self.size = size
        self.mediaType = mediaType
        self.name = name
    }

    enum CodingKeys: String, CodingKey {
        case sha256, size
        case mediaType = "type"
        case name
    }

    /// The canonical text a cell holds.
    public var cellText: String {
        var text = "{\"sha256\":\"\(sha256)\",\"size\":\(size),\"type\":"
        text += Self.quoted(mediaType) + ",\"name\":" + Self.quoted(name) + "}"
        return text
    }

    /// The cell value holding this reference.
    public var cellValue: CellValue { .text(cellText) }

    /// The beginning every canonical reference to `sha256` shares: rows pointing to some content are
    /// found by it (`row_links` on the server).
    public static func cellTextPrefix(sha256: String) -> String { "{\"sha256\":\"\(sha256)\"," }

    /// Reads a reference from a cell's text; `nil` unless it is the canonical form of a valid reference.
    public init?(cellText text: String) {
        guard text.hasPrefix("{\"sha256\":\""),
              let decoded = try? JSONDecoder().decode(AttachmentReference.self, from: Data(text.utf8)),
              decoded.problem == nil, decoded.cellText == text
        else { return nil }
        self = decoded
    }

    /// What is wrong with this reference, in words, or `nil`.
    public var problem: String? {
        if !isSHA256Hex(sha256) { return "sha256 must be 64 lowercase hexadecimal digits" }
        if size < 0 { return "size must not be negative" }
        if !isMediaType(mediaType) { return "type '\(mediaType.prefix(60))' is not a lowercase media type such as image/jpeg" }
        if name.isEmpty || name.unicodeScalars.count > 255 { return "name must have 1 to 255 characters" }
        if name == "." || name == ".." || name.unicodeScalars.contains(where: { $0 == "/" || $0 == "\\" || $0.value < 0x20 || $0.value == 0x7f }) {
            return "name '\(name.prefix(60))' must be a plain file name (no folders, no control characters)"
        }
        return nil
    }

    /// Whether `mediaType` is allowed by a column's list: exact types and `kind/*`; no list allows all.
    public static func allows(_ mediaType: String, in allowed: [String]?) -> Bool {
        guard let allowed, !allowed.isEmpty else { return true }
        return allowed.contains { pattern in
            pattern == mediaType || (pattern.hasSuffix("/*") && mediaType.hasPrefix(pattern.dropLast()))
        }
    }

    /// A media type guessed from a file name's extension, for files attached without one.
    public static func mediaType(forFileName name: String) -> String {
        switch (name as NSString).pathExtension.lowercased() {
        case "jpg", "jpeg": return "image/jpeg"
        case "png": return "image/png"
        case "heic": return "image/heic"
        case "webp": return "image/webp"
        case "gif": return "image/gif"
        case "tif", "tiff": return "image/tiff"
        case "pdf": return "application/pdf"
        case "txt": return "text/plain"
        case "odt": return "application/vnd.oasis.opendocument.text"
        case "docx": return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        default: return "application/octet-stream"
        }
    }

    private static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// Whether `text` is a SHA-256 in lowercase hex.
public func isSHA256Hex(_ text: String) -> Bool {
    text.utf8.count == 64 && text.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
}

func isMediaType(_ text: String) -> Bool {
    let parts = text.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count == 2, text.utf8.count <= 127 else { return false }
    let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789!#$&-^_.+".utf8)
    return parts.allSatisfy { !$0.isEmpty && $0.utf8.allSatisfy(allowed.contains) }
}

/// Where an upload of one attachment stands on the server, for the device that uploads it
/// (`GET /v1/attachments/{sha256}/upload`, and the answer to every `PUT`).
public struct AttachmentUpload: Codable, Sendable, Equatable {
    public var sha256: String
    /// The content's whole size.
    public var size: Int64
    /// How many bytes from the start the server holds of this device's upload: the next `PUT` starts here.
    public var received: Int64
    /// The server holds the whole content and checked its SHA-256: a cell may refer to it.
    public var complete: Bool

    public init(sha256: String, size: Int64, received: Int64, complete: Bool) {
        self.sha256 = sha256
        self.size = size
        self.received = received
        self.complete = complete
    }
}
