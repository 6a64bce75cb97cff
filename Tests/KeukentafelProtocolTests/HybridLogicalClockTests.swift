import Testing
@testable import KeukentafelProtocol

@Suite struct HybridLogicalClockTests {
    @Test func ticksNeverGoBackWhenTheWallClockDoes() {
        for seed in 0..<50 as Range<UInt64> {
            var random = SplitMix64(seed: seed)
            var clock = HybridLogicalClock()
            var wall: UInt64 = 1_700_000_000_000
            var previous: UInt64 = 0
            for _ in 0..<2_000 {
                // The wall clock jumps back and forth, sometimes by hours.
                let jump = Int64(random.next() % 7_200_000) - 3_600_000
                wall = UInt64(max(0, Int64(wall) + (random.next() % 4 == 0 ? jump : Int64(random.next() % 3))))
                if random.next() % 5 == 0 {
                    clock.observe(HybridLogicalClock.timestamp(milliseconds: wall + random.next() % 1000, counter: UInt16(random.next() % 100)))
                }
                let t = clock.tick(wallMilliseconds: wall)
                #expect(t > previous)
                #expect(HybridLogicalClock.milliseconds(of: t) >= wall, "a tick is never behind the wall clock")
                previous = t
            }
        }
    }

    @Test func tickAfterObserveOrdersAfterTheRemoteTimestamp() {
        var clock = HybridLogicalClock()
        let remote = HybridLogicalClock.timestamp(milliseconds: 2_000_000_000_000, counter: 7)
        clock.observe(remote)
        let local = clock.tick(wallMilliseconds: 1_000_000_000_000)
        #expect(local > remote)
        #expect(HybridLogicalClock.counter(of: local) == 8)
    }

    @Test func counterAndMillisecondsPack() {
        let t = HybridLogicalClock.timestamp(milliseconds: 1_763_000_000_123, counter: 65_535)
        #expect(HybridLogicalClock.milliseconds(of: t) == 1_763_000_000_123)
        #expect(HybridLogicalClock.counter(of: t) == 65_535)
    }

    @Test func sameWallMillisecondIncrementsTheCounter() {
        var clock = HybridLogicalClock()
        let a = clock.tick(wallMilliseconds: 5_000)
        let b = clock.tick(wallMilliseconds: 5_000)
        #expect(HybridLogicalClock.counter(of: a) == 0)
        #expect(HybridLogicalClock.counter(of: b) == 1)
        #expect(HybridLogicalClock.milliseconds(of: b) == 5_000)
    }
}

@Suite struct CellVersionTests {
    @Test func wireFormRoundTripsAndSortsLikeTheVersion() throws {
        var random = SplitMix64(seed: 7)
        var versions: [CellVersion] = []
        for _ in 0..<500 {
            let node = NodeID(rawValue: random.next() % 1_000 + 1)!
            versions.append(CellVersion(hlc: random.next() >> 1, node: node))
        }
        for v in versions { #expect(CellVersion(v.description) == v) }
        let byVersion = versions.sorted()
        let byText = versions.sorted { $0.description < $1.description }
        #expect(byVersion == byText)
    }

    @Test func hexDigitsAreSixteenLowercaseDigitsAppendedAfterWhatIsThere() {
        var random = SplitMix64(seed: 11)
        let values: [UInt64] = [0, 1, 9, 10, 15, 16, 0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210, .max] + (0..<200).map { _ in random.next() }
        for value in values {
            let expected = String(repeating: "0", count: 16 - String(value, radix: 16).count) + String(value, radix: 16)
            #expect(hex16(value) == expected)
            var bytes = Array("x:".utf8)
            appendHex16(value, to: &bytes)
            #expect(bytes == Array(("x:" + expected).utf8))
        }
        var wire = Array("[".utf8)
        CellVersion(hlc: 0xA, node: NodeID(rawValue: 0x7FFF_FFFF_FFFF_FFFF)!).appendWireForm(to: &wire)
        #expect(String(decoding: wire, as: UTF8.self) == "[000000000000000a-7fffffffffffffff")
    }

    @Test func malformedWireFormsAreRefused() {
        for text in ["", "abc", "0000000000000001-000000000000000", "0000000000000001_0000000000000001",
                     "000000000000000G-0000000000000001", "0000000000000001-0000000000000000", "0000000000000001-8000000000000000",
                     "0000000000000001-00000000000000011", "ABCDEF0000000001-0000000000000001"] {
            #expect(CellVersion(text) == nil, "\(text)")
        }
    }

    @Test func nodeIDsFitASignedInteger() {
        for _ in 0..<1000 {
            let node = NodeID.random()
            #expect(node.rawValue > 0 && node.rawValue <= UInt64(Int64.max))
        }
        #expect(NodeID(rawValue: 0) == nil)
        #expect(NodeID(rawValue: UInt64(Int64.max) + 1) == nil)
    }
}
