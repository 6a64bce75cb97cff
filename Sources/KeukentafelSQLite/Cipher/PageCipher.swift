import CKeukentafelCipher
import CSQLite
import Crypto
import Foundation

/// Seals and opens the pages the VFS hands over: AES-256-GCM with a random 96-bit nonce per write,
/// and the page's place (database page number, or WAL frame index) as authenticated data, so a page
/// copied to another place fails to open. Layout of a page of `size` bytes:
/// `ciphertext[size - 28] | nonce[12] | tag[16]`.
enum PageCipher {
    static let vfsName = KT_CIPHER_VFS_NAME
    static let nonceBytes = 12
    static let tagBytes = 16

    /// Registers the VFS with SQLite once, before the first encrypted connection opens.
    static let registered: Bool = {
        let callbacks = kt_cipher_callbacks(acquire: acquire, release: release, seal: seal, open: open)
        return kt_cipher_vfs_register(callbacks) == SQLITE_OK
    }()

    private static let acquire: @convention(c) (UnsafePointer<CChar>?) -> UnsafeMutableRawPointer? = { identifier in
        guard let identifier, let key = CipherKeyRegistry.shared.find(String(cString: identifier)) else { return nil }
        return Unmanaged.passRetained(key).toOpaque()
    }

    private static let release: @convention(c) (UnsafeMutableRawPointer?) -> Void = { key in
        guard let key else { return }
        Unmanaged<SQLiteCipherKey>.fromOpaque(key).release()
    }

    private static let seal: @convention(c) (UnsafeMutableRawPointer?, Int32, UInt32, UnsafeMutablePointer<UInt8>?, Int32) -> Int32 = {
        key, place, number, page, size in
        guard let key, let page else { return 1 }
        let cipherKey = Unmanaged<SQLiteCipherKey>.fromOpaque(key).takeUnretainedValue()
        let bodyCount = Int(size) - Int(KT_CIPHER_RESERVE)
        let body = UnsafeMutableRawBufferPointer(start: page, count: bodyCount)
        do {
            let sealed = try AES.GCM.seal(UnsafeRawBufferPointer(body), using: cipherKey.key, nonce: AES.GCM.Nonce(),
                                          authenticating: associatedData(place: place, number: number))
            sealed.ciphertext.copyBytes(to: body)
            let trailer = UnsafeMutableRawBufferPointer(start: page + bodyCount, count: Int(KT_CIPHER_RESERVE))
            sealed.nonce.withUnsafeBytes { trailer.copyMemory(from: $0) }
            sealed.tag.copyBytes(to: UnsafeMutableRawBufferPointer(rebasing: trailer[nonceBytes...]))
            return 0
        } catch {
            return 1
        }
    }

    private static let open: @convention(c) (UnsafeMutableRawPointer?, Int32, UInt32, UnsafeMutablePointer<UInt8>?, Int32) -> Int32 = {
        key, place, number, page, size in
        guard let key, let page else { return 1 }
        let cipherKey = Unmanaged<SQLiteCipherKey>.fromOpaque(key).takeUnretainedValue()
        let bodyCount = Int(size) - Int(KT_CIPHER_RESERVE)
        let body = UnsafeMutableRawBufferPointer(start: page, count: bodyCount)
        let trailer = UnsafeMutableRawBufferPointer(start: page + bodyCount, count: Int(KT_CIPHER_RESERVE))
        do {
            let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: UnsafeRawBufferPointer(rebasing: trailer[..<nonceBytes])),
                                            ciphertext: UnsafeRawBufferPointer(body),
                                            tag: UnsafeRawBufferPointer(rebasing: trailer[nonceBytes...]))
            let plain = try AES.GCM.open(box, using: cipherKey.key, authenticating: associatedData(place: place, number: number))
            plain.copyBytes(to: body)
            trailer.initializeMemory(as: UInt8.self, repeating: 0)
            return 0
        } catch {
            return 1
        }
    }

    private static func associatedData(place: Int32, number: UInt32) -> [UInt8] {
        [UInt8(truncatingIfNeeded: place), UInt8(number >> 24), UInt8((number >> 16) & 0xFF), UInt8((number >> 8) & 0xFF), UInt8(number & 0xFF)]
    }
}
