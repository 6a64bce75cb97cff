import Foundation
@testable import KeukentafelClient
import KeukentafelProcesses
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

    /// Copies an authority's certificate and key over the files a server reads, as a renewal does.
    static func install(_ authority: Authority, certificate: Bool = true, key: Bool = true, into live: SyncServerConfiguration.TLSFiles) throws {
        for (wanted, source, target) in [(certificate, authority.files.certificateChain, live.certificateChain),
                                         (key, authority.files.privateKey, live.privateKey)] where wanted {
            _ = try? FileManager.default.removeItem(atPath: target + ".new")
            try FileManager.default.copyItem(atPath: source, toPath: target + ".new")
            _ = rename(target + ".new", target)
        }
    }

    /// Whether `GET /healthz` over HTTPS succeeds when trusting only `bundle`.
    static func handshakes(_ url: String, trusting bundle: String) async -> Bool {
        let transport = CurlTransport(baseURL: url, token: "", caBundlePath: bundle)
        return (try? await onThread { try transport.send(method: "GET", path: "/healthz", query: [], body: nil) })?.status == 200
    }

    @Test func aRenewedCertificateIsServedAfterAReloadAndABadOneIsNot() async throws {
        let old = try await Self.makeAuthority()
        let renewed = try await Self.makeAuthority(name: "Renewed Test CA")
        let live = Authority(directory: try temporaryDirectory("live-tls"))
        try Self.install(old, into: live.files)
        let server = try await TestServer.start(tls: live.files)
        #expect(await Self.handshakes(server.url, trusting: old.caBundle))
        #expect(!(await Self.handshakes(server.url, trusting: renewed.caBundle)))

        // Half a renewal (a new certificate, the old key), then a file that is not PEM: refused, the old pair stays.
        try Self.install(renewed, key: false, into: live.files)
        #expect { try server.sync.reloadTLS() } throws: { "\($0)".contains("does not belong to the certificate") }
        try "not a certificate".write(toFile: live.files.certificateChain, atomically: true, encoding: .utf8)
        #expect { try server.sync.reloadTLS() } throws: { "\($0)".contains("cannot read the TLS certificate chain") }
        #expect(await Self.handshakes(server.url, trusting: old.caBundle), "still the previous certificate")

        try Self.install(renewed, into: live.files)
        let served = try server.sync.reloadTLS()
        #expect(served?.contains("valid until") == true)
        #expect(await Self.handshakes(server.url, trusting: renewed.caBundle), "new handshakes get the renewed certificate")
        #expect(!(await Self.handshakes(server.url, trusting: old.caBundle)))
        await server.stop()
    }

    @Test func ktdReadsItsCertificateAgainOnSIGHUP() async throws {
        let old = try await Self.makeAuthority()
        let renewed = try await Self.makeAuthority(name: "Renewed Test CA")
        let live = Authority(directory: try temporaryDirectory("live-tls"))
        try Self.install(old, into: live.files)
        let work = try temporaryDirectory("sighup")
        let server = try await onThread {
            try ServerProcess.start(bin: CommandLineTests.binDirectory, data: work + "/data",
                                    schema: repositoryRoot.appendingPathComponent("Schemas/datamodel.yaml").path, in: work,
                                    arguments: ["--tls-certificate", live.files.certificateChain, "--tls-key", live.files.privateKey])
        }
        defer { server.process.terminate() }
        let url = "https://127.0.0.1:\(server.port)"
        #expect(await Self.handshakes(url, trusting: old.caBundle))

        try Self.install(renewed, into: live.files)
        kill(server.process.processIdentifier, SIGHUP)
        // The signal is handled on ktd's own time: wait for it, at most ten seconds.
        let deadline = Date().addingTimeInterval(10)
        var renewedServed = false
        while !renewedServed && Date() < deadline {
            renewedServed = await Self.handshakes(url, trusting: renewed.caBundle)
        }
        #expect(renewedServed, "after SIGHUP ktd serves the renewed certificate")
        #expect(server.process.isRunning, "SIGHUP does not end ktd")
        #expect(!(await Self.handshakes(url, trusting: old.caBundle)))
    }
}
