import Foundation
import KeukentafelCompression
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelTesting
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A plain TCP connection to the server, for requests no HTTP library would send.
final class RawConnection: @unchecked Sendable {
    private let descriptor: Int32

    /// `timeoutSeconds`: how long `response()` waits for the server (long enough for a busy test run).
    init(port: Int, timeoutSeconds: Int = 10) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { close(descriptor); throw TestFailure("connect() failed") }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var noSignal: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_KEEPALIVE, &noSignal, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { close(descriptor) }

    /// Sends bytes; false when the server already closed the connection.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool { FaultProxy.write(descriptor, bytes) }

    /// Reads until the server closes the connection, a response head and body arrived, or the timeout passed.
    func response() -> (status: Int?, text: String) {
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count <= 0 { break }
            data += buffer[0..<count]
            let text = String(decoding: data, as: UTF8.self)
            if let head = text.range(of: "\r\n\r\n"), let length = text[..<head.lowerBound].split(separator: "\r\n")
                .first(where: { $0.lowercased().hasPrefix("content-length:") })
                .flatMap({ Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) }),
                data.count - text[..<head.upperBound].utf8.count >= length {
                break
            }
        }
        let text = String(decoding: data, as: UTF8.self)
        let status = text.hasPrefix("HTTP/1.1 ") ? Int(text.dropFirst(9).prefix(3)) : nil
        return (status, text)
    }
}

/// Hostile requests (issue 8): each gets a 4xx with a stable code, or a closed connection for the
/// transport-level ones; the server stores nothing from them and keeps serving a real device.
@Suite struct HostileRequestTests {
    struct Outcome: CustomStringConvertible {
        var name: String
        var status: Int?
        var code: String?
        var description: String { "\(name): \(status.map(String.init) ?? "closed") \(code ?? "")" }
    }

    func send(_ server: TestServer, token: String, _ method: String, _ path: String, body: Data? = nil,
              headers: [String] = ["Content-Type: application/json"], query: [(String, String)] = []) async throws -> (Int, String?) {
        var transport = CurlTransport(baseURL: server.url, token: token)
        transport.headers = headers
        let configured = transport
        let exchange = try await onThread { try configured.send(method: method, path: path, query: query, body: body) }
        return (exchange.status, (try? JSONDecoder().decode(ErrorResponse.self, from: exchange.body))?.error.code.rawValue)
    }

    func raw(_ server: TestServer, _ bytes: [UInt8]) async throws -> Int? {
        try await onThread {
            let connection = try RawConnection(port: server.port)
            connection.send(bytes)
            return connection.response().status
        }
    }

    @Test func theHostileBatteryGetsFourHundredsStoresNothingAndTheServerKeepsServing() async throws {
        let server = try await TestServer.start(maxRequestBytes: 1024 * 1024)
        _ = try server.store.demo.load()
        let laptop = try server.replica("laptop")
        try await laptop.sync()
        let token = try server.token("attacker device")
        let revoked = try server.token("stolen laptop")
        _ = try server.store.accounts.revokeDevice("stolen laptop")

        // A valid push, captured, to replay later.
        let change = Change(id: "000000000000004d-replayed-1", table: "notes", row: newID(), column: "body", value: .text("eerlijk"),
                            version: CellVersion(hlc: HybridLogicalClock.timestamp(milliseconds: UInt64(Date().timeIntervalSince1970 * 1000)),
                                                 node: NodeID(rawValue: 77)!), base: nil)
        let validPush = Data(FeedCoding.encode(PushRequest(node: NodeID(rawValue: 77)!, schemaVersion: 2, changes: [change])))
        let first = try await send(server, token: token, "POST", "/v1/push", body: validPush)
        #expect(first.0 == 200)
        let before = try server.store.inspection.counts()

        var outcomes: [Outcome] = []
        func record(_ name: String, _ result: (Int, String?)) { outcomes.append(Outcome(name: name, status: result.0, code: result.1)) }
        let push = "/v1/push"
        record("truncated JSON", try await send(server, token: token, "POST", push, body: Data(#"{"node":"000000000000004d","changes":[{"id":"x","#.utf8)))
        record("duplicate keys", try await send(server, token: token, "POST", push, body: Data(#"{"node":"000000000000004d","node":"1","changes":[]}"#.utf8)))
        record("deeply nested", try await send(server, token: token, "POST", push,
                                               body: Data((String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)).utf8)))
        record("not UTF-8", try await send(server, token: token, "POST", push, body: Data([0x7B, 0x22, 0xFF, 0xFE, 0x22, 0x7D])))
        record("JSON of the wrong shape", try await send(server, token: token, "POST", push, body: Data(#"{"changes": {"a": 1}}"#.utf8)))
        record("a push without schemaVersion", try await send(server, token: token, "POST", push, body: Data(
            #"{"node":"000000000000004d","changes":[]}"#.utf8)))
        record("wrong content type", try await send(server, token: token, "POST", push, body: validPush, headers: ["Content-Type: text/xml"]))
        record("unknown content encoding", try await send(server, token: token, "POST", push, body: validPush,
                                                          headers: ["Content-Type: application/json", "Content-Encoding: br"]))
        record("gzip bomb", try await send(server, token: token, "POST", push, body: Data(try Gzip.compress([UInt8](repeating: 0x20, count: 50_000_000))),
                                           headers: ["Content-Type: application/json", "Content-Encoding: gzip"]))
        record("corrupt gzip", try await send(server, token: token, "POST", push, body: Data([0x1F, 0x8B, 8, 0, 1, 2, 3, 4, 5]),
                                              headers: ["Content-Type: application/json", "Content-Encoding: gzip"]))
        record("body over the limit", try await send(server, token: token, "POST", push, body: Data(repeating: 0x20, count: 3 * 1024 * 1024)))
        record("no token", try await send(server, token: "", "GET", "/v1/pull"))
        record("forged token", try await send(server, token: "kt_" + String(repeating: "B", count: 43), "GET", "/v1/pull"))
        record("revoked token", try await send(server, token: revoked, "POST", push, body: validPush))
        record("absurd token", try await send(server, token: String(repeating: "z", count: 10_000), "GET", "/v1/pull"))
        record("wrong method", try await send(server, token: token, "GET", push))
        record("unknown path", try await send(server, token: token, "GET", "/v1/../../etc/passwd"))
        record("negative cursor", try await send(server, token: token, "GET", "/v1/pull", query: [("since", "-5")]))
        record("cursor not a number", try await send(server, token: token, "GET", "/v1/pull", query: [("since", "1e309")]))
        record("floor above the cursor", try await send(server, token: token, "GET", "/v1/pull", query: [("since", "5"), ("floor", "6")]))
        record("history without a row", try await send(server, token: token, "GET", "/v1/history", query: [("table", "cases")]))

        // Transport level, on a raw socket.
        let header = "GET /v1/pull HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\n"
        for (name, bytes) in [
            ("a header of 200 KB", Array((header + "X-Junk: " + String(repeating: "a", count: 200_000) + "\r\n\r\n").utf8)),
            ("5,000 headers", Array((header + (0..<5000).map { "X-\($0): 1\r\n" }.joined() + "\r\n").utf8)),
            ("a garbage request line", Array("BLAH\u{1}\u{2} /// HTTP/9.9\r\n\r\n".utf8)),
            ("binary noise", (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }),
        ] {
            outcomes.append(Outcome(name: name, status: try await raw(server, bytes), code: nil))
        }

        for outcome in outcomes {
            #expect(outcome.status.map { (400..<500).contains($0) } ?? true, "\(outcome)")
        }
        let codes = Dictionary(outcomes.map { ($0.name, $0.code ?? "") }, uniquingKeysWith: { a, _ in a })
        #expect(codes["gzip bomb"] == "request_too_large" && codes["body over the limit"] == "request_too_large")
        #expect(codes["corrupt gzip"] == "malformed_json" && codes["duplicate keys"] == "malformed_json")
        #expect(codes["revoked token"] == "token_revoked" && codes["forged token"] == "unauthorized")
        #expect(codes["floor above the cursor"] == "bad_request")

        // Hostile values inside a well-formed push are refused per change, with a code.
        let hostile = Data(#"{"node":"000000000000004d","schemaVersion":2,"changes":[{"id":"000000000000004d-h1","table":"notes","row":"../../etc","column":"body","value":"x","version":"0000000000000001-000000000000004d"},{"id":"000000000000004d-h2","table":"sqlite_master","row":"x","column":"sql","value":"DROP TABLE cells","version":"0000000000000001-000000000000004d"}]}"#.utf8)
        var hostileTransport = CurlTransport(baseURL: server.url, token: token)
        hostileTransport.headers = ["Content-Type: application/json"]
        let configured = hostileTransport
        let answered = try await onThread { try configured.send(method: "POST", path: push, query: [], body: hostile) }
        #expect(answered.status == 200)
        let results = try JSONDecoder().decode(PushResponse.self, from: answered.body).results
        #expect(results.map(\.code) == [.invalidRowID, .unknownTable])
        #expect(outcomes.filter { ($0.status ?? 0) >= 500 }.isEmpty)
        #expect(outcomes.filter { $0.status != nil }.allSatisfy { $0.code != nil || $0.status == 431 || $0.status == 400 })

        // A replayed push is answered as the first time and stores nothing again.
        let replay = try await send(server, token: token, "POST", push, body: validPush)
        #expect(replay.0 == 200)
        #expect(try server.store.inspection.counts() == before, "nothing stored from the battery or the replay")

        // Slowloris: many connections trickle a request head and never finish it.
        let trickling = try await onThread { () -> [RawConnection] in
            try (0..<64).map { _ in
                let connection = try RawConnection(port: server.port)
                connection.send(Array("POST /v1/push HTTP/1.1\r\nHost: x\r\nContent-Le".utf8))
                return connection
            }
        }
        // The server still serves a real device meanwhile.
        try await laptop.execute("UPDATE cases SET contact_person = 'Na de aanval' WHERE id = ?", [.text(DemoData.deVriesCase)])
        let report = try await laptop.sync()
        #expect(report.pushed.applied == 1)
        #expect(try await send(server, token: token, "GET", "/healthz").0 == 200)
        _ = trickling
        await server.stop()
    }
}
