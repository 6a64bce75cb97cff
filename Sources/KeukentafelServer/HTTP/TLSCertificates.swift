import Foundation
import NIOCore
import NIOSSL

/// The server's certificate chain and key, read from their PEM files and read again on `reload()`
/// (ktd does on SIGHUP), so a renewed certificate is served without a restart and without dropping
/// a connection. Every TLS handshake takes the current pair (NIOSSL's per-hello context callback);
/// connections already open keep theirs.
public final class TLSCertificates: Sendable {
    /// The files, as configured.
    public let files: SyncServerConfiguration.TLSFiles
    private let current: Locked<(chain: [NIOSSLCertificate], key: NIOSSLPrivateKey)>

    /// Reads the files; throws `TLSSetupError` saying which file is wrong.
    public init(files: SyncServerConfiguration.TLSFiles) throws {
        self.files = files
        current = Locked(try Self.read(files))
    }

    /// Reads the files again. On a mistake (a half-copied file, a key that does not match) it throws
    /// and the previous pair stays in use.
    @discardableResult
    public func reload() throws -> String {
        let pair = try Self.read(files)
        current.withLock { $0 = pair }
        return Self.describe(pair.chain[0])
    }

    /// A server configuration whose every handshake uses the current pair.
    func configuration() -> TLSConfiguration {
        let (chain, key) = current.withLock { $0 }
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.minimumTLSVersion = .tlsv12
        tls.sslContextCallback = { [current] _, promise in
            let (chain, key) = current.withLock { $0 }
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = chain.map { .certificate($0) }
            override.privateKey = .privateKey(key)
            promise.succeed(override)
        }
        return tls
    }

    private static func read(_ files: SyncServerConfiguration.TLSFiles) throws -> (chain: [NIOSSLCertificate], key: NIOSSLPrivateKey) {
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        do {
            chain = try NIOSSLCertificate.fromPEMFile(files.certificateChain)
        } catch {
            throw TLSSetupError(description: "cannot read the TLS certificate chain '\(files.certificateChain)' (PEM expected): \(error)")
        }
        do {
            key = try NIOSSLPrivateKey(file: files.privateKey, format: .pem)
        } catch {
            throw TLSSetupError(description: "cannot read the TLS private key '\(files.privateKey)' (PEM expected): \(error)")
        }
        guard !chain.isEmpty else { throw TLSSetupError(description: "'\(files.certificateChain)' holds no certificate") }
        // A key that does not belong to the certificate would fail every handshake: refuse it here.
        let check = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        do {
            _ = try NIOSSLContext(configuration: check)
        } catch {
            throw TLSSetupError(description: "the key '\(files.privateKey)' does not belong to the certificate '\(files.certificateChain)': \(error)")
        }
        return (chain, key)
    }

    private static func describe(_ certificate: NIOSSLCertificate) -> String {
        let expiry = Date(timeIntervalSince1970: TimeInterval(certificate.notValidAfter))
        return "\(certificate.description), valid until \(ISO8601DateFormatter().string(from: expiry))"
    }
}
