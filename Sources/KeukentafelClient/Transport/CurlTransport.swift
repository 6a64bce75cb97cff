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

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    public func send(method: String, path: String, query: [(String, String)], body: Data?, headers extra: [String]) throws -> HTTPExchange {
        _ = Self.globalInit
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
                return curl_easy_perform(handle)
            }
            kt_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, method)
            let payload = body ?? Data()
            return payload.withUnsafeBytes { raw in
                kt_curl_setopt_long(handle, CURLOPT_POST, 1)
                kt_curl_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(raw.count))
                kt_curl_setopt_ptr(handle, CURLOPT_POSTFIELDS, raw.baseAddress)
                return curl_easy_perform(handle)
            }
        }
        guard code == CURLE_OK else {
            let detail = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let summary = String(cString: curl_easy_strerror(code))
            throw TransportError(message: "cannot reach \(baseURL): \(detail.isEmpty ? summary : detail)")
        }
        var status = 0
        kt_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPExchange(status: status, body: sink.data)
    }
}

private final class ResponseSink {
    var data = Data()
}
