import Crypto
import Foundation
import KeukentafelProtocol

/// Signs feed cursors, so that a cursor beyond the store's head proves the store went back (a file
/// put back by hand) only if the store itself once handed it out (decision 0017). A device cannot
/// make every other device download everything again by sending a cursor it was never given.
enum CursorProof {
    static func newKey() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { hexString($0) }
    }

    /// The proof for `cursor` in `epoch`: 128 bits of HMAC-SHA256, in hex.
    static func proof(cursor: Int64, epoch: String?, key: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("\(epoch ?? "")/\(cursor)".utf8), using: SymmetricKey(data: Array(key.utf8)))
        return hexString(mac.prefix(16))
    }

    static func isValid(_ proof: String, cursor: Int64, epoch: String?, key: String) -> Bool {
        DeviceToken.constantTimeEqual(proof, self.proof(cursor: cursor, epoch: epoch, key: key))
    }
}
