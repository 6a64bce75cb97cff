import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A small HTTP proxy on loopback that breaks the connection between client and server on purpose:
/// refused connections, resets in the middle of a body, stalls, truncated or corrupted responses,
/// error statuses from a "gateway", and slow trickles. One request per connection (the client opens a
/// new one per request); a thread per connection.
final class FaultProxy: @unchecked Sendable {
    enum Fault: Sendable, CustomStringConvertible {
        case none
        /// No network: every connection is reset before anything reaches the server.
        case refuse
        /// The request reaches the server only half; both sides are reset.
        case resetRequestMidBody
        /// The server answers; the client gets half the response, then a reset.
        case resetResponseMidBody
        /// Nothing is ever answered (the client's timeout must fire).
        case stall
        /// The response ends early with an orderly close.
        case truncateResponse
        /// A stretch in the middle of the response is overwritten.
        case corruptResponse
        /// A gateway error page, without asking the server.
        case status(Int)
        /// The whole response, a few bytes at a time.
        case trickle

        var description: String {
            switch self {
            case .none: return "none"
            case .refuse: return "no network"
            case .resetRequestMidBody: return "reset mid-request"
            case .resetResponseMidBody: return "reset mid-response"
            case .stall: return "stall"
            case .truncateResponse: return "truncated response"
            case .corruptResponse: return "corrupted response"
            case .status(let code): return "HTTP \(code)"
            case .trickle: return "slow trickle"
            }
        }
    }

    let port: Int
    private let upstreamPort: Int
    private let listener: Int32
    private let lock = NSLock()
    private var currentFault = Fault.none
    private var stopped = false
    /// Requests that reached the proxy, per fault, for assertions.
    private(set) var requests = 0

    var fault: Fault {
        get { lock.withLock { currentFault } }
        set { lock.withLock { currentFault = newValue } }
    }

    /// The fault applies from the connection after the next `count` (which pass untouched): to cut an
    /// upload after some of its chunks arrived.
    func fault(_ fault: Fault, afterPassing count: Int) {
        lock.withLock {
            currentFault = fault
            passing = count
        }
    }
    private var passing = 0

    init(upstreamPort: Int) throws {
        self.upstreamPort = upstreamPort
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 64) == 0 else { throw TestFailure("the fault proxy cannot listen") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            _ = $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        self.listener = listener
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread { [self] in acceptLoop() }.start()
    }

    deinit { stop() }

    func stop() {
        let wasRunning = lock.withLock { () -> Bool in defer { stopped = true }; return !stopped }
        if wasRunning { shutdown(listener, Int32(SHUT_RDWR)); close(listener) }
    }

    static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 { return }
            let fault = lock.withLock { () -> Fault in
                requests += 1
                if passing > 0 {
                    passing -= 1
                    return .none
                }
                return currentFault
            }
            Thread { [self] in serve(client, fault) }.start()
        }
    }

    private func serve(_ client: Int32, _ fault: Fault) {
        var clientOpen = true
        defer { if clientOpen { close(client) } }
        if case .refuse = fault {
            Self.reset(client)
            clientOpen = false
            return
        }
        guard let request = Self.readMessage(client) else { return }
        switch fault {
        case .status(let code):
            let body = "<html><body><h1>\(code) Bad Gateway</h1>nginx</body></html>"
            _ = Self.write(client, Array("HTTP/1.1 \(code) Gateway Error\r\nContent-Type: text/html\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)".utf8))
            return
        case .stall:
            var byte: UInt8 = 0
            _ = recv(client, &byte, 1, 0)  // until the client gives up and closes
            return
        default:
            break
        }
        let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var upstreamOpen = true
        defer { if upstreamOpen { close(upstream) } }
        var address = Self.loopback(port: upstreamPort)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return }
        let forwarded = Self.withConnectionClose(request)
        if case .resetRequestMidBody = fault {
            _ = Self.write(upstream, Array(forwarded[0..<(forwarded.count - max(1, Self.bodyLength(forwarded) / 2))]))
            Self.reset(upstream)
            Self.reset(client)
            upstreamOpen = false
            clientOpen = false
            return
        }
        guard Self.write(upstream, forwarded) else { return }
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(upstream, &buffer, buffer.count, 0)
            if count <= 0 { break }
            response += buffer[0..<count]
        }
        switch fault {
        case .resetResponseMidBody:
            _ = Self.write(client, Array(response[0..<(response.count / 2)]))
            Self.reset(client)
            clientOpen = false
        case .truncateResponse:
            _ = Self.write(client, Array(response[0..<(response.count - max(1, Self.bodyLength(response) / 2))]))
        case .corruptResponse:
            var damaged = response
            let start = damaged.count - max(1, Self.bodyLength(damaged) * 2 / 3)
            for i in start..<min(damaged.count, start + 64) { damaged[i] = 0xFF }
            _ = Self.write(client, damaged)
        case .trickle:
            var offset = 0
            while offset < response.count {
                let end = min(response.count, offset + 512)
                guard Self.write(client, Array(response[offset..<end])) else { return }
                offset = end
                usleep(2_000)
            }
        default:
            _ = Self.write(client, response)
        }
    }

    /// Reads one HTTP message head and its Content-Length body.
    static func readMessage(_ socket: Int32) -> [UInt8]? {
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            if let headEnd = headEnd(data) {
                let length = contentLength(Array(data[0..<headEnd]))
                if data.count >= headEnd + length { return data }
            }
            let count = recv(socket, &buffer, buffer.count, 0)
            if count <= 0 { return data.isEmpty ? nil : data }
            data += buffer[0..<count]
        }
    }

    static func headEnd(_ data: [UInt8]) -> Int? {
        guard data.count >= 4 else { return nil }
        for i in 0...(data.count - 4) where data[i] == 13 && data[i + 1] == 10 && data[i + 2] == 13 && data[i + 3] == 10 { return i + 4 }
        return nil
    }

    static func contentLength(_ head: [UInt8]) -> Int {
        for line in String(decoding: head, as: UTF8.self).split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
            return Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
        }
        return 0
    }

    static func bodyLength(_ message: [UInt8]) -> Int {
        guard let end = headEnd(message) else { return message.count }
        return message.count - end
    }

    /// The request with `Connection: close`, so the server ends the response with the connection.
    static func withConnectionClose(_ request: [UInt8]) -> [UInt8] {
        guard let end = headEnd(request) else { return request }
        let head = String(decoding: request[0..<(end - 2)], as: UTF8.self)
            .split(separator: "\r\n").filter { !$0.lowercased().hasPrefix("connection:") }.joined(separator: "\r\n")
        return Array((head + "\r\nConnection: close\r\n\r\n").utf8) + request[end...]
    }

    static func write(_ socket: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return false }
            offset += sent
        }
        return true
    }

    /// Closes with a TCP reset instead of an orderly close.
    static func reset(_ socket: Int32) {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(socket, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close(socket)
    }
}
