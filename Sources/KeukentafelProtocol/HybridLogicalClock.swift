/// A hybrid logical clock (HLC) packed into one 64-bit integer.
///
/// The upper 48 bits are wall-clock milliseconds since 1970, the lower 16 bits a logical counter.
/// Packing lets the clock advance with a single `max`: the next timestamp is the greater of
/// "last + 1" and "now with counter 0". It therefore never goes backwards, whatever the wall clock
/// does, and it stays close to real time whenever the wall clock is sane.
///
/// ```swift
/// var clock = HybridLogicalClock()
/// let t1 = clock.tick(wallMilliseconds: 1_700_000_000_000)
/// let t2 = clock.tick(wallMilliseconds: 1_600_000_000_000) // wall clock went back
/// assert(t2 > t1)
/// ```
public struct HybridLogicalClock: Sendable, Equatable {
    /// The greatest timestamp this clock has issued or observed.
    public private(set) var last: UInt64

    public init(last: UInt64 = 0) { self.last = last }

    /// The number of bits reserved for the logical counter.
    public static let counterBits: UInt64 = 16

    /// Packs wall-clock milliseconds (and an optional counter) into a timestamp.
    public static func timestamp(milliseconds: UInt64, counter: UInt16 = 0) -> UInt64 {
        (milliseconds << counterBits) | UInt64(counter)
    }

    /// The wall-clock milliseconds part of a timestamp.
    public static func milliseconds(of timestamp: UInt64) -> UInt64 { timestamp >> counterBits }

    /// The logical counter part of a timestamp.
    public static func counter(of timestamp: UInt64) -> UInt16 { UInt16(truncatingIfNeeded: timestamp) }

    /// Issues a new timestamp for a local event: strictly greater than every timestamp seen so far.
    public mutating func tick(wallMilliseconds: UInt64) -> UInt64 {
        let wall = Self.timestamp(milliseconds: wallMilliseconds)
        last = Swift.max(last &+ 1, wall)
        return last
    }

    /// Takes note of a timestamp received from another node, so that later local events order after it.
    public mutating func observe(_ remote: UInt64) {
        last = Swift.max(last, remote)
    }
}
