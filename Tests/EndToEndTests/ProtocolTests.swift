import Foundation
import KeukentafelCompression
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelTesting
import Testing

/// The HTTP surface: authentication, errors with stable codes, per-change results.
@Suite struct ProtocolTests {
    func errorCode(_ exchange: HTTPExchange) -> String? {
        (try? JSONDecoder().decode(ErrorResponse.self, from: exchange.body))?.error.code.rawValue
    }

    func send(_ server: TestServer, token: String, _ method: String, _ path: String, body: Data? = nil,
              headers: [String]? = nil, query: [(String, String)] = [], decodesContent: Bool = true) async throws -> HTTPExchange {
        var transport = CurlTransport(baseURL: server.url, token: token)
        transport.decodesContent = decodesContent
        if let headers { transport.headers = headers }
        let configured = transport
        return try await onThread { try configured.send(method: method, path: path, query: query, body: body) }
    }

    @Test func requestsWithoutAValidTokenAreRefused() async throws {
        let server = try await TestServer.start()
        let none = try await send(server, token: "", "GET", "/v1/pull")
        #expect(none.status == 401)
        #expect(errorCode(none) == "unauthorized")
        let forged = try await send(server, token: "kt_" + String(repeating: "A", count: 43), "GET", "/v1/pull")
        #expect(forged.status == 401)
        #expect(errorCode(forged) == "unauthorized")
        let huge = try await send(server, token: String(repeating: "x", count: 5000), "GET", "/v1/pull")
        #expect(huge.status == 401)
        await server.stop()
    }

    @Test func aRevokedDeviceIsRefusedOnItsNextRequest() async throws {
        let server = try await TestServer.start()
        let laptop = try server.replica("lost laptop")
        _ = try seedCase(on: laptop)
        try await laptop.sync()
        _ = try server.store.accounts.revokeDevice("lost laptop")
        try await laptop.execute("UPDATE residents SET phone = '0612345678'")
        do {
            try await laptop.sync()
            Issue.record("a revoked device synced")
        } catch SyncError.server(let status, let code, _) {
            #expect(status == 401)
            #expect(code == "token_revoked")
        }
        #expect(try laptop.outbox().count == 1, "the local write is kept")
        #expect(try laptop.status().lastError?.contains("token_revoked") == true)
        await server.stop()
    }

    @Test func malformedAndOversizedRequestsGetStableCodes() async throws {
        let server = try await TestServer.start(maxRequestBytes: 64 * 1024)
        let token = try server.token("tester")
        let garbage = try await send(server, token: token, "POST", "/v1/push", body: Data("{\"node\": ".utf8))
        #expect(garbage.status == 400)
        #expect(errorCode(garbage) == "malformed_json")
        let wrongShape = try await send(server, token: token, "POST", "/v1/push", body: Data(#"{"node":"0000000000000001","changes":"x"}"#.utf8))
        #expect(errorCode(wrongShape) == "malformed_json")
        let tooBig = try await send(server, token: token, "POST", "/v1/push", body: Data(repeating: UInt8(ascii: " "), count: 200_000))
        #expect(tooBig.status == 413)
        #expect(errorCode(tooBig) == "request_too_large")
        let wrongType = try await send(server, token: token, "POST", "/v1/push", body: Data("x".utf8), headers: ["Content-Type: text/plain"])
        #expect(wrongType.status == 415)
        #expect(errorCode(wrongType) == "unsupported_media_type")
        let nowhere = try await send(server, token: token, "GET", "/v1/nowhere")
        #expect(nowhere.status == 404)
        #expect(errorCode(nowhere) == "not_found")
        let badCursor = try await send(server, token: token, "GET", "/v1/pull", query: [("since", "yesterday")])
        #expect(badCursor.status == 400)
        #expect(errorCode(badCursor) == "bad_request")
        #expect(try server.store.inspection.counts()["changes"] == 0)
        await server.stop()
    }

    @Test func aBatchWithBadChangesAppliesTheGoodOnesAndExplainsTheRest() async throws {
        let server = try await TestServer.start()
        let token = try server.token("tester")
        let node = NodeID.random()
        let row = newID()
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        func change(_ n: Int, table: String = "residents", row: String = row, column: String, _ value: CellValue,
                    ahead: UInt64 = 0) -> Change {
            Change(id: "\(node)-\(n)", table: table, row: row, column: column, value: value,
                   version: CellVersion(hlc: HybridLogicalClock.timestamp(milliseconds: now + ahead, counter: UInt16(n)), node: node), base: nil)
        }
        let batch = [
            change(1, column: "last_name", .text("Jansen")),
            change(2, column: "last_name", .text(String(repeating: "x", count: 1_000_000))),
            change(3, column: "preferred_channel", .text("pigeon")),
            change(4, table: "sqlite_master", column: "name", .text("x")),
            change(5, row: "'; DROP TABLE cells; --", column: "last_name", .text("x")),
            change(6, column: "birth_date", .text("2026-02-30")),
            change(7, column: "phone", .text("06"), ahead: 400 * 24 * 3600 * 1000),
            change(8, column: "street_address", .text("Dorpsstraat 1\u{0}")),
            change(9, column: "birth_date", .text("2008-05-01")),
        ]
        let body = try JSONEncoder().encode(PushRequest(node: node, schemaVersion: 1, changes: batch))
        let exchange = try await send(server, token: token, "POST", "/v1/push", body: body)
        #expect(exchange.status == 200)
        let response = try JSONDecoder().decode(PushResponse.self, from: exchange.body)
        #expect(response.results.map(\.status) == [.applied, .rejected, .rejected, .rejected, .rejected, .rejected, .rejected, .rejected, .applied])
        #expect(response.results.compactMap(\.code) == [.valueTooLong, .invalidValue, .unknownTable, .invalidRowID, .invalidValue, .clockAhead, .invalidValue])
        #expect(response.results[1].message?.contains("residents.last_name") == true)
        #expect(try server.store.inspection.counts()["cells"] == 2, "only the two valid cells are stored")
        #expect(try server.store.inspection.counts()["changes"] == 2)

        // Text that is not UTF-8 is refused for that change only; the valid change beside it applies.
        let raw = Array(#"{"node":"\#(node)","schemaVersion":1,"changes":[{"id":"\#(node)-20","table":"residents","row":"\#(row)","column":"city","value":""#.utf8)
            + [0xC3, 0x28]
            + Array(#"","version":"\#(change(20, column: "city", .null).version)"},{"id":"\#(node)-21","table":"residents","row":"\#(row)","column":"phone","value":"0612","version":"\#(change(21, column: "phone", .null).version)"}]}"#.utf8)
        let mixed = try JSONDecoder().decode(PushResponse.self, from: try await send(server, token: token, "POST", "/v1/push", body: Data(raw)).body)
        #expect(mixed.results.map(\.status) == [.rejected, .applied])
        #expect(mixed.results.first?.message?.contains("UTF-8") == true)
        #expect(try server.store.inspection.cell(table: "residents", row: row, column: "city") == nil)

        // The same batch again: same answers, nothing stored twice.
        let again = try JSONDecoder().decode(PushResponse.self, from: try await send(server, token: token, "POST", "/v1/push", body: body).body)
        #expect(again.results.map(\.status) == response.results.map(\.status))
        #expect(try server.store.inspection.counts()["changes"] == 3, "the two valid changes of the batch and the phone number, each once")

        // A change id reused for a different change is refused.
        var reused = batch[0]
        reused.value = .text("Someone else")
        reused.version.hlc += 1
        let reuse = try JSONDecoder().decode(PushResponse.self, from: try await send(
            server, token: token, "POST", "/v1/push", body: try JSONEncoder().encode(PushRequest(node: node, schemaVersion: 1, changes: [reused]))).body)
        #expect(reuse.results.first?.code == .changeIDReused)
        #expect(try server.store.inspection.cell(table: "residents", row: row, column: "last_name")?.value == .text("Jansen"))
        await server.stop()
    }

    @Test func bodiesAreGzippedBothWays() async throws {
        let server = try await TestServer.start(maxRequestBytes: 256 * 1024)
        let laptop = try server.replica("laptop")
        for i in 0..<40 { _ = try seedCase(on: laptop, name: "Inwoner \(i)") }
        let cellsPerCase = try laptop.outbox().count / 40
        try await laptop.sync()  // sent gzipped (over 4 KiB)
        let cells = Int64(40 * cellsPerCase)
        #expect(try server.store.inspection.counts()["cells"] == cells)

        // The feed comes back gzipped when asked for.
        let token = try server.token("raw")
        let raw = try await send(server, token: token, "GET", "/v1/pull", headers: ["Accept: application/json", "Accept-Encoding: gzip"],
                                 decodesContent: false)
        #expect(raw.status == 200)
        #expect(Gzip.isGzip(raw.body))
        let page = try FeedCoding.decodePull(Data(try raw.body.withUnsafeBytes { try Gzip.decompress($0, limit: 10 << 20) }))
        #expect(page.rows.count == 80)

        // A body that inflates past the limit, a corrupt one, and an unknown encoding.
        let bomb = try Gzip.compress([UInt8](repeating: UInt8(ascii: " "), count: 4 << 20))
        let bombed = try await send(server, token: token, "POST", "/v1/push", body: Data(bomb),
                                    headers: ["Content-Type: application/json", "Content-Encoding: gzip"])
        #expect(bombed.status == 413)
        #expect(errorCode(bombed) == "request_too_large")
        let corrupt = try await send(server, token: token, "POST", "/v1/push", body: Data([0x1F, 0x8B, 1, 2, 3]),
                                     headers: ["Content-Type: application/json", "Content-Encoding: gzip"])
        #expect(corrupt.status == 400, "corrupt, not too large")
        #expect(errorCode(corrupt) == "malformed_json")
        let brotli = try await send(server, token: token, "POST", "/v1/push", body: Data("{}".utf8),
                                    headers: ["Content-Type: application/json", "Content-Encoding: br"])
        #expect(brotli.status == 415)
        #expect(errorCode(brotli) == "unsupported_media_type")
        #expect(try server.store.inspection.counts()["cells"] == cells)
        await server.stop()
    }

    @Test func aReplicaRefusesInvalidWritesAtOnce() async throws {
        let server = try await TestServer.start()
        let laptop = try server.replica("laptop")
        let (_, caseID) = try seedCase(on: laptop)
        let before = try laptop.outbox().count
        for (sql, fragment) in [
            ("UPDATE cases SET status = 'weg' WHERE id = '\(caseID)'", "cases.status"),
            ("UPDATE cases SET melding_date = '2026-02-30' WHERE id = '\(caseID)'", "cases.melding_date"),
            ("INSERT INTO notes (id, case_id, body) VALUES ('not-a-uuid', '\(caseID)', 'x')", "notes.id"),
            ("UPDATE cases SET domains = '[\"wmo\", \"astrology\"]' WHERE id = '\(caseID)'", "cases.domains"),
            ("UPDATE cases SET domains = 'wmo' WHERE id = '\(caseID)'", "cases.domains"),
            ("UPDATE cases SET id = '\(newID())' WHERE id = '\(caseID)'", "never changes"),
            ("INSERT INTO residents (id) VALUES ('\(newID())')", "residents.last_name"),
        ] {
            do {
                try await laptop.execute(sql)
                Issue.record("accepted: \(sql)")
            } catch {
                #expect("\(error)".contains(fragment), "\(error)")
            }
        }
        #expect(try laptop.outbox().count == before, "nothing of a refused write reaches the outbox")
        #expect(try laptop.value("cases", caseID, "status") == .text("melding"))
        await server.stop()
    }
}

/// Runs blocking work (libcurl) on a thread of its own.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}
