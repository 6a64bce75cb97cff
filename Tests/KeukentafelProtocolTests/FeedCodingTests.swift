import Foundation
import Testing
@testable import KeukentafelProtocol

/// The hand-written JSON of the hot messages must be the same JSON `Codable` reads and writes.
@Suite struct FeedCodingTests {
    static let texts = ["", "plan", "Dochter komt \"soms\" langs\nen belt", "tab\there", "ünïcødé 🏠", "back\\slash", "\u{1}ctrl", "/slash"]

    func randomValue(_ random: inout SplitMix64) -> CellValue {
        switch random.next() % 5 {
        case 0: return .null
        case 1: return .integer(Int64(bitPattern: random.next()))
        // Not integral: Foundation's JSONDecoder reads 46488.0 as an integer, so Codable cannot
        // round-trip integral reals. FeedCoding can (see integralRealsKeepTheirType).
        case 2: return .real(Double(Int64(bitPattern: random.next() % 1_000_000)) / 7 + 0.25)
        default: return .text(Self.texts[Int(random.next() % UInt64(Self.texts.count))])
        }
    }

    func randomVersion(_ random: inout SplitMix64) -> CellVersion {
        CellVersion(hlc: random.next() >> 1, node: NodeID(rawValue: random.next() % UInt64(Int64.max) + 1)!)
    }

    @Test("the look ahead at a page reads what its full decode reads", arguments: 0..<40 as Range<UInt64>)
    func peekAgreesWithTheFullDecode(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        // Values full of what a bracket-and-quote scanner could trip over.
        let tricky: [CellValue] = [.text("}],\"cursor\":1,{["), .text("\\\""), .text("a\\"), .integer(-12), .real(1.5e-7), .null, .text(""),
                                   .integer(.min), .integer(.max), .integer(0), .text("é\u{1}\tñ\"\n\\ü\u{1F}"), .text("plain ascii run")]
        var rows: [FeedRow] = []
        for r in 0..<Int(random.next() % 8) {
            let cells = (0..<Int(random.next() % 5)).map { c in
                FeedCell(column: "col\(c)", value: random.next() % 2 == 0 ? tricky[Int(random.next() % UInt64(tricky.count))] : randomValue(&random),
                         version: randomVersion(&random))
            }
            rows.append(FeedRow(table: "cases", row: "row-\(r)", cells: cells))
        }
        let page = PullResponse(cursor: Int64(random.next() % 100_000), more: random.next() % 2 == 0, rows: rows, conflicts: [],
                                evictions: random.next() % 3 == 0 ? [RowReference(table: "notes", row: "n\"]1")] : [],
                                resync: random.next() % 4 == 0, epoch: random.next() % 3 == 0 ? nil : "e\"poch{\(seed)",
                                serverTime: 1_763_000_000_000, schemaVersion: 2)
        let body = Data(try FeedCoding.encode(page))
        let peeked = try #require(FeedCoding.peekPull(body))
        let decoded = try FeedCoding.decodePull(body)
        #expect(peeked.cursor == decoded.cursor && peeked.more == decoded.more && peeked.resync == decoded.resync && peeked.epoch == decoded.epoch)
        #expect(FeedCoding.peekPull(body.prefix(body.count / 2)) == nil || body.count < 80, "a cut body is no page")
    }

    @Test(arguments: 0..<20 as Range<UInt64>)
    func pullPagesRoundTripBothWays(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        var rows: [FeedRow] = []
        for r in 0..<Int(random.next() % 20) {
            let cells = (0..<Int(random.next() % 6)).map { c in
                FeedCell(column: "col\(c)", value: randomValue(&random), version: randomVersion(&random))
            }
            rows.append(FeedRow(table: "cases", row: "row-\(r)", cells: cells))
        }
        let conflict = ConflictRecord(id: 3, table: "cases", row: "r", column: "status", winnerValue: .text("a"), winnerVersion: randomVersion(&random),
                                      winnerDevice: nil, loserValue: .integer(2), loserVersion: randomVersion(&random), loserDevice: "d",
                                      base: nil, rule: "lww", review: false, recordedAt: "2026-11-23T00:00:00.000Z")
        let page = PullResponse(cursor: Int64(random.next() % 1000), more: random.next() % 2 == 0, rows: rows,
                                conflicts: seed % 2 == 0 ? [conflict] : [], cursorProof: seed % 3 == 0 ? nil : "0123abcd\(seed)",
                                serverTime: 1_763_000_000_000, schemaVersion: 1)
        let fast = Data(try FeedCoding.encode(page))
        let viaCodable = try JSONDecoder().decode(PullResponse.self, from: fast)
        #expect(viaCodable.rows == page.rows)
        #expect(viaCodable.conflicts == page.conflicts && viaCodable.cursorProof == page.cursorProof)
        let back = try FeedCoding.decodePull(try JSONEncoder().encode(page))
        #expect(back.rows == page.rows)
        #expect(back.cursor == page.cursor && back.more == page.more && back.conflicts == page.conflicts && back.cursorProof == page.cursorProof)
    }

    @Test("empty lists in any spacing are empty; lists with entries are still decoded in full")
    func emptyListsNeedNoDecoder() throws {
        let body = #"{"cursor":5,"more":false,"rows":[],"conflicts":[ ],"evictions":[\#n\#t],"purges":[ {"table":"cases","row":"r1"} ],"resync":false,"serverTime":1,"schemaVersion":1}"#
        let page = try FeedCoding.decodePull(Data(body.utf8))
        #expect(page.conflicts.isEmpty && page.evictions.isEmpty)
        #expect(page.purges == [RowReference(table: "cases", row: "r1")])
        let broken = #"{"cursor":5,"more":false,"rows":[],"conflicts":[ x ],"resync":false,"serverTime":1,"schemaVersion":1}"#
        #expect(throws: (any Error).self) { try FeedCoding.decodePull(Data(broken.utf8)) }
    }

    @Test(arguments: 0..<20 as Range<UInt64>)
    func pushBatchesRoundTripBothWays(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        let changes = (0..<Int(random.next() % 30)).map { i in
            Change(id: "n-\(i)", table: "notes", row: "r\(i)", column: "body", value: randomValue(&random),
                   version: randomVersion(&random), base: random.next() % 2 == 0 ? nil : randomVersion(&random))
        }
        let request = PushRequest(node: NodeID(rawValue: 77)!, schemaVersion: 2, changes: changes)
        let fast = Data(FeedCoding.encode(request))
        #expect(try JSONDecoder().decode(PushRequest.self, from: fast).changes == changes)
        let encoded = try JSONEncoder().encode(request)
        let back = try encoded.withUnsafeBytes { try FeedCoding.decodePush($0) }
        #expect(back.changes == changes)
        #expect(back.node == request.node && back.schemaVersion == 2)
    }

    @Test(arguments: 0..<20 as Range<UInt64>)
    func pushResponsesRoundTripBothWays(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        let results = (0..<Int(random.next() % 40)).map { i in
            let status = ChangeStatus.allCases[Int(random.next() % UInt64(ChangeStatus.allCases.count))]
            let optional = { (random: inout SplitMix64) in random.next() % 2 == 0 }
            return ChangeResult(id: "n-\(i)", status: status,
                                won: optional(&random) ? nil : optional(&random),
                                conflict: optional(&random) ? nil : Int64(random.next() % 100_000),
                                code: optional(&random) ? nil : ErrorCode.allCases[Int(random.next() % UInt64(ErrorCode.allCases.count))],
                                message: optional(&random) ? nil : Self.texts[Int(random.next() % UInt64(Self.texts.count))])
        }
        let refused = seed % 4 == 0 ? nil : (0..<Int(seed % 3)).map {
            RefusedResolution(conflict: Int64($0) + 1, code: .notFound, message: Self.texts[Int(seed) % Self.texts.count])
        }
        let response = PushResponse(serverTime: 1_763_000_000_000 + Int64(seed), results: results,
                                    resolved: seed % 3 == 0 ? nil : (0..<Int(seed % 4)).map { Int64($0) * 7 }, refusedResolutions: refused)
        let fast = Data(FeedCoding.encode(response))
        let viaCodable = try JSONDecoder().decode(PushResponse.self, from: fast)
        #expect(viaCodable.results == results && viaCodable.serverTime == response.serverTime && viaCodable.resolved == response.resolved)
        #expect(viaCodable.refusedResolutions == refused)
        let back = try FeedCoding.decodePushResponse(try JSONEncoder().encode(response))
        #expect(back.results == results && back.serverTime == response.serverTime && back.resolved == response.resolved)
        #expect(back.refusedResolutions == refused)
    }

    @Test func pushResponsesWithUnknownStatusOrMissingFieldsAreRefused() {
        for text in [#"{"serverTime":1,"results":[{"id":"a","status":"vanished"}]}"#, #"{"serverTime":1,"results":[{"status":"applied"}]}"#,
                     #"{"results":[]}"#, #"{"serverTime":1,"results":[{"id":"a","status":"applied","code":"no_such_code"}]}"#,
                     #"{"serverTime":1,"results":[]"#] {
            #expect(throws: (any Error).self, "\(text)") { try FeedCoding.decodePushResponse(Data(text.utf8)) }
        }
    }

    func decodePush(_ text: [UInt8]) throws -> PushRequest {
        try text.withUnsafeBytes { try FeedCoding.decodePush($0) }
    }

    @Test func hostilePushBodiesAreRefused() {
        let valid = #"{"node":"0000000000000001","schemaVersion":1,"changes":[]}"#
        #expect(throws: Never.self) { _ = try decodePush(Array(valid.utf8)) }
        let hostile: [[UInt8]] = [
            Array(#"{"node":"0000000000000001","schemaVersion":1,"changes":[{"id":""#.utf8) + [0xC3, 0x28]
                + Array(#"","table":"t","row":"r","column":"c","value":1,"version":"0000000000000001-0000000000000001"}]}"#.utf8),
            Array(#"{"node":"0000000000000001","node":"0000000000000002","schemaVersion":1,"changes":[]}"#.utf8),  // duplicate key
            Array((String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)).utf8),        // deep nesting
            Array(#"{"node":"0000000000000001","schemaVersion":1,"changes":[{"id":"a","table":"t","row":"r","column":"c","value":1e999,"version":"0000000000000001-0000000000000001"}]}"#.utf8),
            Array(#"{"node":"0000000000000001","schemaVersion":1,"changes":[]"#.utf8),                           // truncated
            Array(#"{"node":"0000000000000001","schemaVersion":1,"changes":[]} trailing"#.utf8),
            Array(#"{"node":"xyz","schemaVersion":1,"changes":[]}"#.utf8),
            Array(#"{"node":"0000000000000001","schemaVersion":1,"changes":[{"id":"a"}]}"#.utf8),
            Array("{\"node\":\"0000000000000001\",\"schemaVersion\":1,\"changes\":[{\"id\":\"a\u{1}\"}]}".utf8),
            Array(#"{"node":"0000000000000001","schemaVersion":1,"changes":[{"id":"\ud800","table":"t"}]}"#.utf8),
            [],
        ]
        for body in hostile {
            #expect(throws: JSONReader.Error.self, "\(String(decoding: body.prefix(60), as: UTF8.self))") { _ = try decodePush(body) }
        }
    }

    @Test func invalidUTF8InAValueRejectsOnlyThatChange() throws {
        let body = Array(#"{"node":"0000000000000001","schemaVersion":1,"changes":[{"id":"a","table":"t","row":"r","column":"c","value":""#.utf8)
            + [0xC3, 0x28]
            + Array(#"","version":"0000000000000001-0000000000000001"},{"id":"b","table":"t","row":"r","column":"c","value":"ok","version":"0000000000000001-0000000000000002"}]}"#.utf8)
        let request = try decodePush(body)
        #expect(request.changes.count == 2)
        #expect(request.rejectedWhileDecoding[0]?.code == .invalidValue)
        #expect(request.rejectedWhileDecoding[1] == nil)
        #expect(request.changes[1].value == .text("ok"))
    }

    @Test func integralRealsKeepTheirType() throws {
        let request = PushRequest(node: NodeID(rawValue: 1)!, schemaVersion: 1, changes: [
            Change(id: "a", table: "t", row: "r", column: "c", value: .real(46488), version: CellVersion(hlc: 1, node: NodeID(rawValue: 1)!), base: nil),
        ])
        let back = try FeedCoding.encode(request).withUnsafeBytes { try FeedCoding.decodePush($0) }
        #expect(back.changes.first?.value == .real(46488))
    }

    @Test("a version is read where it lies, and one written otherwise is read or refused as before")
    func versionsInAnyFormDecodeAsBefore() throws {
        func page(_ version: String) -> Data {
            Data((#"{"cursor":5,"more":false,"rows":[{"table":"t","row":"r","cells":[{"column":"c","value":1,"version":"#
                + version + #"}]}],"conflicts":[],"resync":false,"serverTime":1,"schemaVersion":1}"#).utf8)
        }
        let expected = CellVersion(hlc: 0x0123_4567_89ab_cdef, node: NodeID(rawValue: 0x1a)!)
        for accepted in [#""0123456789abcdef-000000000000001a""#, #"  "0123456789abcdef-000000000000001a""#,
                         #""0123456789abcdef-000000000000001a""#, #""0123456789abcdef-000000000000001a""#] {
            #expect(try FeedCoding.decodePull(page(accepted)).rows.first?.cells.first?.version == expected, "\(accepted)")
        }
        for refused in [#""0123456789ABCDEF-000000000000001a""#, #""0123456789abcdef-000000000000001""#,
                        #""0123456789abcdef-000000000000001a0""#, #""0123456789abcdef_000000000000001a""#,
                        #""0123456789abcdef-0000000000000000""#, #"01234"#, #""0123456789abcdef-000000000000001a"#] {
            #expect(throws: (any Error).self, "\(refused)") { try FeedCoding.decodePull(page(refused)) }
        }
        // Where the version ends the buffer (a hostile or cut body): refused, never read past the end.
        let cut = Array(#""0123456789abcdef-000000000000001a""#.utf8)
        for length in 0..<cut.count {
            let bytes = Array(cut[..<length])
            #expect(throws: (any Error).self) { try bytes.withUnsafeBytes { buffer in var reader = JSONReader(buffer); _ = try reader.version() } }
        }
        #expect(try cut.withUnsafeBytes { buffer in var reader = JSONReader(buffer); return try reader.version() } == expected)
    }

    @Test func escapesDecodeToTheRightText() throws {
        let body = #"{"node":"0000000000000001","schemaVersion":1,"changes":[{"id":"a","table":"t","row":"r","column":"c","value":"\u00e9\n\ud83c\udfe0\"\/","version":"0000000000000001-0000000000000001"}]}"#
        let request = try decodePush(Array(body.utf8))
        #expect(request.changes.first?.value == .text("é\n🏠\"/"))
    }
}
