import Foundation
import Testing
@testable import KeukentafelProtocol

/// New row ids are valid lowercase UUIDs of version 7 whose order is the order they were made in.
@Suite struct RowIDTests {
    @Test func theLayoutIsVersion7WithTheTimeFirst() {
        let id = RowID.timeOrdered(milliseconds: 0x0193_7A5C_1234, randomA: 0xABC, randomB: 0xFFFF_FFFF_FFFF_FFFF)
        #expect(id == "01937a5c-1234-7abc-bfff-ffffffffffff")
        #expect(isCanonicalUUID(id))
        let zero = RowID.timeOrdered(milliseconds: 0, randomA: 0, randomB: 0)
        #expect(zero == "00000000-0000-7000-8000-000000000000")
        // Bits beyond their fields never leak into the version or variant.
        #expect(RowID.timeOrdered(milliseconds: 1, randomA: 0xFFFF, randomB: 0).hasPrefix("00000000-0001-7fff-8000"))
    }

    @Test func idsMadeOneAfterAnotherAscendAndDiffer() {
        let ids = (0..<20_000).map { _ in RowID.new() }
        #expect(ids.allSatisfy(isCanonicalUUID))
        #expect(zip(ids, ids.dropFirst()).allSatisfy { $0 < $1 }, "20,000 ids within a few milliseconds still ascend")
        #expect(Set(ids).count == ids.count)
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        let milliseconds = UInt64(ids.last!.replacingOccurrences(of: "-", with: "").prefix(12), radix: 16)!
        #expect(milliseconds <= now + 100 && milliseconds + 60_000 >= now, "the first 48 bits are the time")
    }
}
