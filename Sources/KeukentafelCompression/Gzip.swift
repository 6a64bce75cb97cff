import CZlib

/// gzip for request and response bodies, on zlib.
public enum Gzip {
    public struct Error: Swift.Error, CustomStringConvertible {
        public var description: String
        /// The body would inflate beyond the limit (a bomb), as opposed to being corrupt or truncated.
        public var tooLarge = false
    }

    /// Whether `bytes` start with the gzip magic number.
    public static func isGzip(_ bytes: some Collection<UInt8>) -> Bool {
        var iterator = bytes.makeIterator()
        return iterator.next() == 0x1F && iterator.next() == 0x8B
    }

    /// Compresses `input`. Level 1 is the default: on the hot paths speed matters more than the last
    /// few percent of size.
    public static func compress(_ input: UnsafeRawBufferPointer, level: Int32 = 1) throws -> [UInt8] {
        var stream = z_stream()
        guard kt_deflate_init_gzip(&stream, level) == Z_OK else { throw Error(description: "gzip: cannot initialise") }
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(input.count))) + 32)
        let produced: Int = try output.withUnsafeMutableBytes { out in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
            stream.avail_in = uInt(input.count)
            stream.next_out = out.baseAddress?.assumingMemoryBound(to: Bytef.self)
            stream.avail_out = uInt(out.count)
            guard deflate(&stream, Z_FINISH) == Z_STREAM_END else { throw Error(description: "gzip: compression failed") }
            return out.count - Int(stream.avail_out)
        }
        output.removeSubrange(produced...)
        return output
    }

    public static func compress(_ input: [UInt8], level: Int32 = 1) throws -> [UInt8] {
        try input.withUnsafeBytes { try compress($0, level: level) }
    }

    /// Decompresses `input`, refusing to produce more than `limit` bytes (a small body must not
    /// inflate into gigabytes).
    public static func decompress(_ input: UnsafeRawBufferPointer, limit: Int) throws -> [UInt8] {
        var stream = z_stream()
        guard kt_inflate_init_gzip(&stream) == Z_OK else { throw Error(description: "gzip: cannot initialise") }
        defer { inflateEnd(&stream) }
        stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(input.count)
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let (status, produced) = chunk.withUnsafeMutableBytes { out -> (Int32, Int) in
                stream.next_out = out.baseAddress?.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(out.count)
                let status = inflate(&stream, Z_NO_FLUSH)
                return (status, out.count - Int(stream.avail_out))
            }
            output.append(contentsOf: chunk[0..<produced])
            if output.count > limit { throw Error(description: "gzip: the body inflates beyond \(limit) bytes", tooLarge: true) }
            switch status {
            case Z_STREAM_END: return output
            case Z_OK: if produced == 0 && stream.avail_in == 0 { throw Error(description: "gzip: truncated body") }
            case Z_BUF_ERROR: if stream.avail_in == 0 { throw Error(description: "gzip: truncated body") }
            default: throw Error(description: "gzip: corrupt body")
            }
        }
    }
}
