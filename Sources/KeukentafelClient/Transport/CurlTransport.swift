import CCurl
import Foundation

/// HTTP over libcurl: TLS certificates verified (libcurl's default, never switched off here),
/// gzip accepted, connect and total timeouts, and the bearer token on every request.
public struct CurlTransport: SyncTransport {
    public var baseURL: String
    public var token: String
    public var connectTimeoutMilliseconds = 5_000
    public var timeoutMilliseconds = 120_000
    /// A PEM bundle of extra certificate authorities (e.g. a municipality's own CA).
    public var caBundlePath: String?
    /// Let libcurl ask for compressed responses and decode them (on by default).
    public var decodesContent = true
    /// Headers sent on every request; the defaults suit the sync protocol.
    public var headers = ["Accept: application/json", "Content-Type: application/json", "Expect:"]

    public init(baseURL: String, token: String, caBundlePath: String? = nil) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.token = token
        self.caBundlePath = caBundlePath
    }

    /// What to do about the failures people meet when setting a laptop up: TLS on one side only.
    static func hint(for code: CURLcode, _ detail: String) -> String {
        if detail.contains("wrong version number") || detail.contains("packet length too long") {
            return ". The server does not speak TLS at this address: use http:// (or give ktd serve --tls-certificate and --tls-key)"
        }
        if code == CURLE_GOT_NOTHING || detail.contains("Empty reply from server") {
            return ". The server closed the connection without an answer: if it serves HTTPS, the address must start with https://"
        }
        if code == CURLE_PEER_FAILED_VERIFICATION || detail.contains("certificate") {
            return ". The server's certificate is not trusted here: give its authority to kt init --ca-bundle FILE (or kt login --ca-bundle)"
        }
        return ""
    }

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    public func send(method: String, path: String, query: [(String, String)], body: Data?, headers extra: [String]) throws -> HTTPExchange {
        try send(method: method, path: path, query: query, body: body, headers: extra, cancellation: nil)
    }

    public func send(method: String, path: String, query: [(String, String)], body: Data?, headers extra: [String],
                     cancellation: RequestCancellation?) throws -> HTTPExchange {
        _ = Self.globalInit
        try cancellation?.check()
        guard let handle = curl_easy_init() else { throw TransportError(message: "libcurl could not start a request") }
        defer { curl_easy_cleanup(handle) }

        var url = baseURL + path
        if !query.isEmpty {
            url += "?" + query.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? $0.1)" }
                .joined(separator: "&")
        }
        var headerList: UnsafeMutablePointer<curl_slist>?
        for header in (token.isEmpty ? [] : ["Authorization: Bearer \(token)"]) + headers + extra {
            headerList = curl_slist_append(headerList, header)
        }
        defer { curl_slist_free_all(headerList) }

        let sink = ResponseSink()
        let sinkPointer = Unmanaged.passUnretained(sink).toOpaque()
        kt_curl_setopt_string(handle, CURLOPT_URL, url)
        kt_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList)
        kt_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        kt_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, connectTimeoutMilliseconds)
        kt_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, timeoutMilliseconds)
        if decodesContent { kt_curl_setopt_string(handle, CURLOPT_ACCEPT_ENCODING, "") }  // every encoding libcurl decodes, gzip included
        kt_curl_setopt_string(handle, CURLOPT_USERAGENT, "keukentafel-client/1")
        if let caBundlePath { kt_curl_setopt_string(handle, CURLOPT_CAINFO, caBundlePath) }
        kt_curl_setopt_write(handle) { data, size, count, context in
            let sink = Unmanaged<ResponseSink>.fromOpaque(context!).takeUnretainedValue()
            let bytes = size * count
            if let data { sink.data.append(UnsafeRawPointer(data).assumingMemoryBound(to: UInt8.self), count: bytes) }
            return bytes
        }
        kt_curl_setopt_ptr(handle, CURLOPT_WRITEDATA, sinkPointer)

        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        let code: CURLcode = errorBuffer.withUnsafeMutableBufferPointer { buffer in
            kt_curl_setopt_ptr(handle, CURLOPT_ERRORBUFFER, buffer.baseAddress)
            if method == "GET" {
                kt_curl_setopt_long(handle, CURLOPT_HTTPGET, 1)
                return perform(handle, cancellation)
            }
            kt_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, method)
            let payload = body ?? Data()
            return payload.withUnsafeBytes { raw in
                kt_curl_setopt_long(handle, CURLOPT_POST, 1)
                kt_curl_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(raw.count))
                kt_curl_setopt_ptr(handle, CURLOPT_POSTFIELDS, raw.baseAddress)
                return perform(handle, cancellation)
            }
        }
        if code == CURLE_ABORTED_BY_CALLBACK { throw CancellationError() }
        guard code == CURLE_OK else {
            let detail = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let summary = String(cString: curl_easy_strerror(code))
            throw TransportError(message: "cannot reach \(baseURL): \(detail.isEmpty ? summary : detail)\(Self.hint(for: code, detail))")
        }
        var status = 0
        kt_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPExchange(status: status, body: sink.data)
    }
}

/// Runs one transfer through a multi handle instead of `curl_easy_perform`, so that a cancellation
/// can wake it from its wait (`curl_multi_wakeup`) at once, even in the middle of a 25-second long-poll.
/// A cancelled transfer ends with `CURLE_ABORTED_BY_CALLBACK`.
private func perform(_ handle: UnsafeMutableRawPointer, _ cancellation: RequestCancellation?) -> CURLcode {
    guard let cancellation else { return curl_easy_perform(handle) }
    guard let multi = curl_multi_init() else { return CURLE_OUT_OF_MEMORY }
    defer { curl_multi_cleanup(multi) }
    guard curl_multi_add_handle(multi, handle) == CURLM_OK else { return CURLE_FAILED_INIT }
    defer { curl_multi_remove_handle(multi, handle) }
    let wakeable = MultiHandle(multi)
    let key = cancellation.onCancel { wakeable.wakeUp() }
    defer { cancellation.removeHandler(key) }
    var running: Int32 = 1
    while true {
        if cancellation.isCancelled { return CURLE_ABORTED_BY_CALLBACK }
        guard curl_multi_perform(multi, &running) == CURLM_OK else { return CURLE_FAILED_INIT }
        if running == 0 { break }
        // Waits for the socket, the transfer's own timers, or a wake-up; never longer than a second.
        guard curl_multi_poll(multi, nil, 0, 1_000, nil) == CURLM_OK else { return CURLE_FAILED_INIT }
    }
    var remaining: Int32 = 0
    while let message = curl_multi_info_read(multi, &remaining) {
        if message.pointee.msg == CURLMSG_DONE { return message.pointee.data.result }
    }
    return CURLE_FAILED_INIT
}

/// The multi handle, shared with the thread that cancels: `curl_multi_wakeup` is the one libcurl call
/// that may be made from another thread.
private final class MultiHandle: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    init(_ pointer: UnsafeMutableRawPointer) { self.pointer = pointer }
    func wakeUp() { curl_multi_wakeup(pointer) }
}

private final class ResponseSink {
    var data = Data()
}
