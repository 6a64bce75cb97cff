import Crypto
import Foundation
import KeukentafelProtocol

/// Bearer tokens for devices: 256 random bits, shown once, stored only as a SHA-256 hash.
enum DeviceToken {
    /// A new token: `kt_` and 43 characters of base64url (32 random bytes).
    static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let base64 = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        return "kt_" + base64
    }

    /// The stored form of a token: lowercase hex SHA-256. Looking a device up by this hash means the
    /// token itself is never compared byte by byte, so response times tell an attacker nothing.
    static func hash(_ token: String) -> String {
        sha256Hex(token)
    }

    /// Compares two hashes in time that depends only on their length, as a second line of defence
    /// after the indexed lookup.
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<x.count { difference |= x[i] ^ y[i] }
        return difference == 0
    }
}

/// The SHA-256 of `text`'s UTF-8 bytes in lowercase hex. (Formatting each byte with `String(format:)`
/// made hashing the row ids of a push 12 % of the time of a concurrent ingest.)
func sha256Hex(_ text: String) -> String {
    hexString(SHA256.hash(data: Data(text.utf8)))
}
