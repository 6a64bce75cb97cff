import KeukentafelProtocol
import Testing

/// The view log's chain check (decision 0030), on its own: the rules the server applies to what a
/// device sends. The digest is a stand-in (FNV-1a); the rules do not depend on which hash it is.
@Suite struct ViewLogVerifyTests {
    static func digest(_ bytes: [UInt8]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return String(hash, radix: 16)
    }

    static func chain(_ count: Int) -> [ViewLog.Entry] {
        var previous = ViewLog.start
        return (1...count).map { seq in
            let entry = ViewLog.Entry(seq: Int64(seq), at: Int64(1_000 * seq), table: "cases", row: "c\(seq)", purpose: "p\(seq)",
                                      previous: previous, digest: digest)
            previous = entry.hash
            return entry
        }
    }

    static func verify(_ entries: [ViewLog.Entry], head: (Int64, String) = (0, ViewLog.start),
                       stored: [Int64: String] = [:]) -> [ViewLog.Finding] {
        ViewLog.verify(entries, head: (head.0, head.1), digest: digest) { stored[$0] }.findings
    }

    @Test func anUnbrokenChainIsOKAndMovesTheHead() {
        let entries = Self.chain(5)
        let (findings, head) = ViewLog.verify(entries, head: (0, ViewLog.start), digest: Self.digest) { _ in nil }
        #expect(findings == Array(repeating: .ok, count: 5))
        #expect(head.seq == 5 && head.hash == entries[4].hash)
        // In two batches: the second goes on from the first's head.
        #expect(Self.verify(Array(entries[2...]), head: (2, entries[1].hash)) == [.ok, .ok, .ok])
    }

    @Test func anEditedEntryIsAlteredWhetherOrNotItsHashWasMadeAgain() {
        var edited = Self.chain(4)
        edited[1].purpose = "onschuldig"
        #expect(Self.verify(edited) == [.ok, .altered, .ok, .ok], "its hash no longer matches")

        var rehashed = Self.chain(4)
        rehashed[1] = ViewLog.Entry(seq: 2, at: rehashed[1].at, table: "cases", row: "c2", purpose: "onschuldig",
                                    previous: rehashed[1].previous, digest: Self.digest)
        #expect(Self.verify(rehashed) == [.ok, .ok, .altered, .ok], "the next entry no longer follows it")

        for field in 0..<5 {
            var entries = Self.chain(2)
            switch field {
            case 0: entries[1].at += 1
            case 1: entries[1].table = "residents"
            case 2: entries[1].row = "other"
            case 3: entries[1].seq = 3
            default: entries[1].previous = ViewLog.start
            }
            let findings = Self.verify(entries)
            #expect(findings[0] == .ok && findings[1] != .ok, "field \(field): \(findings)")
        }
    }

    @Test func aRemovedEntryLeavesAGap() {
        var entries = Self.chain(5)
        entries.remove(at: 2)
        #expect(Self.verify(entries) == [.ok, .ok, .gap, .ok])
        #expect(Self.verify(Array(Self.chain(3).dropFirst())) == [.gap, .ok], "the first entries never came")
    }

    @Test func aRetryIsRepeatedAndAnotherEntryUnderAStoredNumberIsAltered() {
        let entries = Self.chain(3)
        let stored = Dictionary(uniqueKeysWithValues: entries.map { ($0.seq, $0.hash) })
        #expect(Self.verify(entries, head: (3, entries[2].hash), stored: stored) == [.repeated, .repeated, .repeated])
        let other = ViewLog.Entry(seq: 2, at: 5, table: "cases", row: "x", purpose: "anders", previous: entries[0].hash, digest: Self.digest)
        #expect(Self.verify([other], head: (3, entries[2].hash), stored: stored) == [.altered])
    }

    @Test func theFirstEntryMustStartFromTheLogsStart() {
        let first = ViewLog.Entry(seq: 1, at: 1, table: "cases", row: "c", purpose: "p", previous: "not the start", digest: Self.digest)
        #expect(Self.verify([first]) == [.altered])
    }
}
