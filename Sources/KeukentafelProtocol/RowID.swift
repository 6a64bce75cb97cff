import Foundation

/// New row ids: lowercase UUIDs of version 7 (RFC 9562), whose first 48 bits are the time in
/// milliseconds, so that ids made one after another sort one after another.
///
/// Why it matters: every store keeps rows in B-trees ordered by id. Random ids (version 4) put each
/// new row on a random page of every index, so a push of a few hundred new rows rewrites a few
/// hundred pages per index; ids that ascend fill the same last pages. CouchDB uses sequential ids by
/// default for the same reason. Any lowercase UUID stays valid; these are what `kt_new_id()` in a
/// replica and the synthetic population make (decision 0019).
public enum RowID {
    /// A version-7 UUID for `milliseconds` since 1970, with the low 12 bits of `randomA` and 62 of `randomB`.
    public static func timeOrdered(milliseconds: UInt64, randomA: UInt16, randomB: UInt64) -> String {
        let high = (milliseconds & 0xFFFF_FFFF_FFFF) << 16 | 0x7000 | UInt64(randomA & 0x0FFF)
        let low = 0x8000_0000_0000_0000 | (randomB & 0x3FFF_FFFF_FFFF_FFFF)
        var bytes = [UInt8](repeating: 0, count: 36)
        var position = 0
        func put(_ value: UInt64, digits: Int) {
            for shift in stride(from: (digits - 1) * 4, through: 0, by: -4) {
                bytes[position] = hexDigits[Int((value >> UInt64(shift)) & 0xF)]
                position += 1
            }
        }
        func dash() { bytes[position] = UInt8(ascii: "-"); position += 1 }
        put(high >> 32, digits: 8); dash()
        put((high >> 16) & 0xFFFF, digits: 4); dash()
        put(high & 0xFFFF, digits: 4); dash()
        put(low >> 48, digits: 4); dash()
        put(low & 0xFFFF_FFFF_FFFF, digits: 12)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A new id from the system clock. Ids made by one process ascend even within one millisecond or
    /// when the clock steps back: then the 12 bits after the time count on (the RFC's method 1).
    public static func new() -> String {
        generator.next()
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)
    private static let generator = MonotonicGenerator()

    private final class MonotonicGenerator: @unchecked Sendable {
        private let lock = NSLock()
        private var lastMilliseconds: UInt64 = 0
        private var counter: UInt16 = 0

        func next() -> String {
            let now = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
            var random = SystemRandomNumberGenerator()
            lock.lock()
            if now > lastMilliseconds {
                lastMilliseconds = now
                counter = UInt16.random(in: 0...0x7FF, using: &random)  // room to count on
            } else if counter < 0xFFF {
                counter += 1
            } else {
                lastMilliseconds += 1
                counter = 0
            }
            let (milliseconds, count) = (lastMilliseconds, counter)
            lock.unlock()
            return RowID.timeOrdered(milliseconds: milliseconds, randomA: count, randomB: random.next())
        }
    }
}

/// Bytes in lowercase hex (SHA-256 digests of tokens and attachments). Inlinable: every request's
/// token is hashed and named in hex, and unspecialised across modules each byte cost a witness call.
@inlinable
public func hexString(_ bytes: some Sequence<UInt8>) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var hex: [UInt8] = []
    hex.reserveCapacity(64)
    for byte in bytes {
        hex.append(digits[Int(byte >> 4)])
        hex.append(digits[Int(byte & 0x0F)])
    }
    return String(decoding: hex, as: UTF8.self)
}
