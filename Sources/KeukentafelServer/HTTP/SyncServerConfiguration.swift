import Foundation

/// Settings of the HTTP side of the server.
public struct SyncServerConfiguration: Sendable {
    /// The address to listen on.
    public var host: String
    /// The port to listen on (0: any free one).
    public var port: Int
    /// The largest request body accepted, in bytes.
    public var maxRequestBytes: Int
    /// The most changes accepted in one push.
    public var maxBatchChanges: Int
    /// The longest a pull may wait for news (`wait=`), in seconds.
    public var maxWaitSeconds: Int
    /// Terminate TLS with this certificate chain and key (PEM files); `nil` serves plain HTTP (behind a
    /// TLS-terminating proxy, or on loopback).
    public var tls: TLSFiles?

    /// The TLS certificate chain and private key, as PEM files.
    public struct TLSFiles: Sendable {
        /// The certificate chain's file.
        public var certificateChain: String
        /// The private key's file.
        public var privateKey: String
        /// The two files.
        public init(certificateChain: String, privateKey: String) {
            self.certificateChain = certificateChain
            self.privateKey = privateKey
        }
    }

    /// Settings with the defaults `ktd serve` uses.
    public init(host: String = "127.0.0.1", port: Int = 8470, maxRequestBytes: Int = 16 * 1024 * 1024, maxBatchChanges: Int = 20_000,
                maxWaitSeconds: Int = 30, tls: TLSFiles? = nil) {
        self.host = host
        self.port = port
        self.maxRequestBytes = maxRequestBytes
        self.maxBatchChanges = maxBatchChanges
        self.maxWaitSeconds = maxWaitSeconds
        self.tls = tls
    }
}
