import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelTesting
import Testing

/// The server terminates TLS; the client verifies the certificate against the system's authorities
/// or a CA bundle given to `kt init`. The CA is made in the test with openssl.
@Suite struct TLSTests {
    struct Authority {
        let directory: String
        var caBundle: String { directory + "/ca.pem" }
        var files: SyncServerConfiguration.TLSFiles {
            .init(certificateChain: directory + "/server.pem", privateKey: directory + "/server.key")
        }
    }

    /// A CA, and a certificate it signs for 127.0.0.1 and localhost.
    static func makeAuthority(name: String = "Keukentafel Test CA") async throws -> Authority {
        let directory = try temporaryDirectory("tls")
        let script = """
            set -e
            cd '\(directory)'
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 2 \
                -subj '/CN=\(name)' 2>/dev/null
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr \
                -subj '/CN=localhost' 2>/dev/null
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext.cnf
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf 2>/dev/null
            """
        let status = try await onThread { () -> Int32 in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = ["-c", script]
            try process.run()
            process.waitUntilExit()
            return process.terminationStatus
        }
        try #require(status == 0, "openssl could not make the test CA (Tools/install-deps installs openssl)")
        return Authority(directory: directory)
    }

    @Test func aClientThatTrustsTheCASyncsOverHTTPS() async throws {
        let authority = try await Self.makeAuthority()
        let server = try await TestServer.start(tls: authority.files)
        _ = try server.store.demo.load()
        #expect(server.url.hasPrefix("https://"))
        let path = try temporaryDirectory("replica") + "/laptop.sqlite"
        let replica = try Replica.create(path: path, dataModel: server.store.dataModel, serverURL: server.url,
                                         token: try server.token("laptop"), caBundlePath: authority.caBundle)
        let report = try await replica.sync()
        #expect(report.pulled.cellsApplied == DemoData.cellCount)
        #expect(try replica.caBundlePath == authority.caBundle, "kt init remembers the bundle")
        await server.stop()
    }

    @Test func certificatesAreVerified() async throws {
        let authority = try await Self.makeAuthority()
        let stranger = try await Self.makeAuthority(name: "Another Test CA")
        let server = try await TestServer.start(tls: authority.files)
        let token = try server.token("laptop")
        for (label, bundle) in [("no bundle: the system's authorities only", nil), ("another CA", Optional(stranger.caBundle))] {
            let path = try temporaryDirectory("replica") + "/laptop.sqlite"
            let replica = try Replica.create(path: path, dataModel: server.store.dataModel, serverURL: server.url, token: token,
                                             caBundlePath: bundle)
            try await replica.execute("INSERT INTO residents (id, last_name) VALUES (?, 'Kowalski')", [.text(newID())])
            await #expect("\(label)") { try await replica.sync() } throws: { error in
                guard case SyncError.unreachable(let why) = error else { return false }
                return why.lowercased().contains("certificate") && why.contains("--ca-bundle")
            }
            #expect(try replica.outbox().count == 1, "\(label): nothing was sent, nothing lost")
        }
        #expect(try server.store.inspection.counts()["cells"] == 0)

        // Plain HTTP to the TLS port is no way in either.
        let plain = CurlTransport(baseURL: server.url.replacingOccurrences(of: "https:", with: "http:"), token: token)
        do {
            let answer = try await onThread { try plain.send(method: "GET", path: "/v1/hello", query: [], body: nil) }
            #expect(answer.status != 200)
        } catch let error as TransportError {
            #expect(error.message.contains("https://"), "says what to do: \(error.message)")
        }
        await server.stop()

        // HTTPS to a server without TLS: said in words, not "wrong version number" alone.
        let plainServer = try await TestServer.start()
        let tlsToPlain = CurlTransport(baseURL: plainServer.url.replacingOccurrences(of: "http:", with: "https:"), token: "")
        await #expect { try await onThread { try tlsToPlain.send(method: "GET", path: "/v1/hello", query: [], body: nil) } } throws: { error in
            (error as? TransportError)?.message.contains("does not speak TLS at this address: use http://") == true
        }
        await plainServer.stop()
    }
}
