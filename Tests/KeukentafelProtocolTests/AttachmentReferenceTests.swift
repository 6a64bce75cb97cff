import Foundation
import Testing
@testable import KeukentafelProtocol

/// The reference an attachment cell holds (decision 0026): one canonical text, checked by the same
/// rules on the device and the server.
@Suite struct AttachmentReferenceTests {
    static let sha = String(repeating: "ab", count: 32)
    static let model = DataModel(version: 1, tables: [
        .init(name: "documents", columns: [
            .init(name: "file", type: .attachment, required: true, mediaTypes: ["image/*", "application/pdf"], maxBytes: 1_000),
            .init(name: "any", type: .attachment),
        ]),
    ])

    func problem(_ value: CellValue, column: String = "file") -> ChangeRejection? {
        let table = Self.model.tables[0]
        return Self.model.validate(value, for: table.column(named: column)!, in: table)
    }

    @Test func aReferenceRoundTripsThroughItsCanonicalText() throws {
        let reference = AttachmentReference(sha256: Self.sha, size: 512, mediaType: "image/jpeg", name: "brief \"deurwaarder\" ü.jpg")
        #expect(reference.cellText == #"{"sha256":"\#(Self.sha)","size":512,"type":"image/jpeg","name":"brief \"deurwaarder\" ü.jpg"}"#)
        #expect(AttachmentReference(cellText: reference.cellText) == reference)
        #expect(reference.cellText.hasPrefix(AttachmentReference.cellTextPrefix(sha256: Self.sha)))
        #expect(problem(reference.cellValue) == nil)
        let decoded = try JSONDecoder().decode(AttachmentReference.self, from: Data(reference.cellText.utf8))
        #expect(decoded == reference, "plain JSON reads it too")
    }

    @Test func onlyTheCanonicalFormIsAReference() {
        let canonical = AttachmentReference(sha256: Self.sha, size: 5, mediaType: "image/png", name: "a.png").cellText
        for text in [
            #"{"size":5,"sha256":"\#(Self.sha)","type":"image/png","name":"a.png"}"#,  // other key order
            #"{"sha256":"\#(Self.sha)", "size":5,"type":"image/png","name":"a.png"}"#,  // a space
            #"{"sha256":"\#(Self.sha.uppercased())","size":5,"type":"image/png","name":"a.png"}"#,  // upper-case hex
            #"{"sha256":"\#(Self.sha)","size":5,"type":"image\/png","name":"a.png"}"#,  // an escaped slash
            canonical + " ", "brief.jpg", "",
        ] {
            #expect(AttachmentReference(cellText: text) == nil, "\(text)")
            #expect(problem(.text(text))?.code == .invalidValue, "\(text)")
        }
        #expect(AttachmentReference(cellText: canonical) != nil)
        #expect(problem(.integer(1))?.code == .invalidValue)
        #expect(problem(.null)?.code == .invalidValue, "the column is required")
        #expect(problem(.null, column: "any") == nil)
    }

    @Test func theColumnsRulesApply() {
        func value(size: Int64 = 10, type: String = "image/jpeg", name: String = "x.jpg") -> CellValue {
            AttachmentReference(sha256: Self.sha, size: size, mediaType: type, name: name).cellValue
        }
        #expect(problem(value(type: "image/heic")) == nil, "image/* allows every image type")
        #expect(problem(value(type: "application/pdf")) == nil)
        #expect(problem(value(type: "text/plain"))?.message.contains("not allowed here") == true)
        #expect(problem(value(size: 1_000)) == nil)
        #expect(problem(value(size: 1_001))?.code == .valueTooLong)
        #expect(problem(value(size: 50 * 1024 * 1024), column: "any")?.code == .valueTooLong, "25 MB by default")
        #expect(problem(value(size: 25 * 1024 * 1024), column: "any") == nil)
        for name in ["../etc/passwd", "a/b.jpg", "", "tab\there.jpg", String(repeating: "n", count: 256), ".."] {
            #expect(problem(value(name: name))?.code == .invalidValue, "\(name)")
        }
        for type in ["IMAGE/JPEG", "image", "image/", "/jpeg", "image/jp eg"] {
            #expect(problem(value(type: type))?.code == .invalidValue, "\(type)")
        }
        #expect(problem(value(size: -1))?.code == .invalidValue)
    }

    @Test func theModelSaysWhereAttachmentRulesAreWrong() {
        func check(_ column: DataModel.Column) -> String {
            do {
                try DataModel(version: 1, tables: [.init(name: "t", columns: [column])]).check()
                return ""
            } catch {
                return "\(error)"
            }
        }
        #expect(check(.init(name: "f", type: .text, mediaTypes: ["image/*"])).contains("apply to attachment columns only"))
        #expect(check(.init(name: "f", type: .attachment, maxBytes: 0)).contains("maxBytes"))
        #expect(check(.init(name: "f", type: .attachment, maxBytes: 2 * 1024 * 1024 * 1024)).contains("maxBytes"))
        #expect(check(.init(name: "f", type: .attachment, mediaTypes: ["jpeg"])).contains("'jpeg' is not a media type"))
        #expect(check(.init(name: "f", type: .attachment, mediaTypes: ["image/*", "application/pdf"], download: .eager)).isEmpty)
        #expect(Self.model.largestAllowedAttachment == DataModel.defaultMaxAttachmentBytes)
    }

    @Test func mediaTypesArePatterns() {
        #expect(AttachmentReference.allows("image/png", in: ["image/*"]))
        #expect(!AttachmentReference.allows("imagex/png", in: ["image/*"]))
        #expect(AttachmentReference.allows("anything/at-all", in: nil))
        #expect(AttachmentReference.mediaType(forFileName: "Scan.PDF") == "application/pdf")
        #expect(AttachmentReference.mediaType(forFileName: "IMG_0001.jpeg") == "image/jpeg")
        #expect(AttachmentReference.mediaType(forFileName: "noextension") == "application/octet-stream")
    }
}
