import Testing
import KeukentafelCompression

@Suite struct GzipTests {
    @Test func roundTrips() throws {
        let text = Array(String(repeating: "Keukentafelgesprek bij mevrouw De Vries. ", count: 500).utf8)
        let packed = try Gzip.compress(text)
        #expect(Gzip.isGzip(packed))
        #expect(packed.count < text.count / 10)
        #expect(try packed.withUnsafeBytes { try Gzip.decompress($0, limit: 1 << 20) } == text)
        #expect(try Gzip.compress([UInt8]()).withUnsafeBytes { try Gzip.decompress($0, limit: 10) } == [])
    }

    @Test func refusesBombsTruncationAndGarbage() throws {
        let bomb = try Gzip.compress([UInt8](repeating: 0, count: 10_000_000))
        #expect(bomb.count < 50_000, "level 1 still shrinks zeros 200-fold")
        #expect(throws: Gzip.Error.self) { try bomb.withUnsafeBytes { try Gzip.decompress($0, limit: 1_000_000) } }
        let packed = try Gzip.compress(Array("hello hello hello hello".utf8))
        #expect(throws: Gzip.Error.self) { try Array(packed.prefix(packed.count - 6)).withUnsafeBytes { try Gzip.decompress($0, limit: 100) } }
        #expect(throws: Gzip.Error.self) { try Array("not gzip at all".utf8).withUnsafeBytes { try Gzip.decompress($0, limit: 100) } }
    }
}
