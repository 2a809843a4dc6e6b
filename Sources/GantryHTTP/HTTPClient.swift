internal import CCurl
import Foundation
import GantryCore
import GantryRuntime
import Synchronization

/// An HTTP client over libcurl, one easy handle on a thread of its own.
///
/// libcurl's easy interface blocks, so every transfer runs on this actor's
/// dedicated thread, never on the cooperative pool. The handle is kept between
/// requests, so connections to the same host are reused. Timeouts are enforced
/// by libcurl; cancelling the calling task aborts the transfer from libcurl's
/// progress callback within a few milliseconds. One request at a time per
/// client: create one client per concurrent caller.
public actor HTTPClient {
    private let executor: DedicatedThreadExecutor
    private var handle: UnsafeMutableRawPointer?

    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        executor.asUnownedSerialExecutor()
    }

    public init(name: String = "gantry-http") {
        _ = HTTPClient.globalInit
        self.executor = DedicatedThreadExecutor(name: name)
    }

    isolated deinit {
        if let handle { curl_easy_cleanup(handle) }
        executor.shutdown()
    }

    /// `curl_global_init`, once per process, before the first handle.
    private static let globalInit: Void = { _ = ccurl_global_init() }()

    /// Sends `request` and returns the whole response.
    public func send(_ request: HTTPRequest) async throws(HTTPError) -> HTTPResponse {
        let state = Transfer(limit: request.maxResponseBytes, sink: nil)
        let result = await withTaskCancellationHandler {
            perform(request, state)
        } onCancel: {
            state.canceled.store(true, ordering: .relaxed)
        }
        return try result.get()
    }

    /// Sends `request` and hands the body to `onData` as it arrives, with the response's
    /// status (server-sent events, downloads that must not sit in memory). `onData`
    /// returns false to stop the transfer early, which is not an error. The returned
    /// response has an empty body.
    ///
    /// `onHead` is called once with the status and headers, before the first byte of the body
    /// (or when the transfer ends, for a response without one); never when the transfer fails.
    public func stream(
        _ request: HTTPRequest,
        onHead: (@Sendable (_ status: Int, _ headers: [(name: String, value: String)]) -> Void)? = nil,
        onData: @escaping @Sendable (_ status: Int, _ bytes: UnsafeRawBufferPointer) -> Bool
    ) async throws(HTTPError) -> HTTPResponse {
        let state = Transfer(limit: .max, sink: onData)
        state.onHead = onHead
        let result = await withTaskCancellationHandler {
            perform(request, state)
        } onCancel: {
            state.canceled.store(true, ordering: .relaxed)
        }
        return try result.get()
    }

    // MARK: The transfer, on the client's thread

    private func perform(_ request: HTTPRequest, _ state: Transfer) -> Result<HTTPResponse, HTTPError> {
        let host = HTTPError.hostPart(of: request.url)
        guard request.url.hasPrefix("http://") || request.url.hasPrefix("https://") else {
            return .failure(HTTPError(.invalidRequest, host: host, detail: "only http:// and https:// URLs are supported"))
        }
        if handle == nil { handle = curl_easy_init() }
        guard let curl = handle else {
            return .failure(HTTPError(.transport, host: host, detail: "libcurl could not create a handle"))
        }
        // Keeps the connection cache, clears every option of the previous request.
        curl_easy_reset(curl)

        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }
        // No "Expect: 100-continue" round trip before a body.
        for header in request.headers + [("Expect", "")] {
            headerList = curl_slist_append(headerList, "\(header.0): \(header.1)")
        }

        let context = Unmanaged.passUnretained(state).toOpaque()
        state.handle = curl
        var code = CURLE_OK
        func set(_ result: CURLcode) { if code == CURLE_OK { code = result } }
        set(ccurl_setopt_string(curl, CURLOPT_URL, request.url))
        set(ccurl_setopt_string(curl, CURLOPT_PROTOCOLS_STR, "http,https"))
        set(ccurl_setopt_long(curl, CURLOPT_NOSIGNAL, 1))
        set(ccurl_setopt_long(curl, CURLOPT_TIMEOUT_MS, Int(max(1, request.timeout.milliseconds))))
        set(ccurl_setopt_long(curl, CURLOPT_CONNECTTIMEOUT_MS, Int(max(1, request.connectTimeout.milliseconds))))
        set(ccurl_setopt_long(curl, CURLOPT_FOLLOWLOCATION, request.followRedirects ? 1 : 0))
        set(ccurl_setopt_long(curl, CURLOPT_MAXREDIRS, 5))
        set(ccurl_setopt_long(curl, CURLOPT_SSL_VERIFYPEER, request.verifyTLS ? 1 : 0))
        set(ccurl_setopt_long(curl, CURLOPT_SSL_VERIFYHOST, request.verifyTLS ? 2 : 0))
        if let caFile = request.caFile { set(ccurl_setopt_string(curl, CURLOPT_CAINFO, caFile)) }
        set(ccurl_setopt_slist(curl, CURLOPT_HTTPHEADER, headerList))
        set(ccurl_setopt_data_callback(curl, CURLOPT_WRITEFUNCTION, httpWriteCallback))
        set(ccurl_setopt_pointer(curl, CURLOPT_WRITEDATA, context))
        set(ccurl_setopt_data_callback(curl, CURLOPT_HEADERFUNCTION, httpHeaderCallback))
        set(ccurl_setopt_pointer(curl, CURLOPT_HEADERDATA, context))
        set(ccurl_setopt_long(curl, CURLOPT_NOPROGRESS, 0))
        set(ccurl_setopt_progress_callback(curl, httpProgressCallback))
        set(ccurl_setopt_pointer(curl, CURLOPT_XFERINFODATA, context))
        switch request.method {
        case .get: break
        case .head: set(ccurl_setopt_long(curl, CURLOPT_NOBODY, 1))
        default: set(ccurl_setopt_string(curl, CURLOPT_CUSTOMREQUEST, request.method.rawValue))
        }
        if let body = request.body {
            // COPYPOSTFIELDS copies the bytes, so nothing here has to outlive the call.
            set(ccurl_setopt_offset(curl, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count)))
            set(body.withUnsafeBytes { bytes in
                ccurl_setopt_pointer(curl, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
            })
        }
        guard code == CURLE_OK else {
            return .failure(HTTPError(.invalidRequest, host: host, detail: String(cString: curl_easy_strerror(code))))
        }

        let started = ContinuousClock.now
        let result = curl_easy_perform(curl)
        let elapsed = ContinuousClock.now - started
        if result != CURLE_OK {
            if result == CURLE_WRITE_ERROR && state.stoppedBySink {
                // The caller had what it wanted.
            } else {
                // Do not reuse a handle whose connection may be half-read.
                curl_easy_cleanup(curl)
                handle = nil
                return .failure(HTTPClient.error(result, state: state, host: host))
            }
        }
        var status = 0
        _ = ccurl_getinfo_long(curl, CURLINFO_RESPONSE_CODE, &status)
        state.announceHead(status: status)
        return .success(HTTPResponse(status: status, headers: state.headers, body: state.body, elapsed: elapsed))
    }

    private static func error(_ code: CURLcode, state: Transfer, host: String) -> HTTPError {
        let detail = String(cString: curl_easy_strerror(code))
        if state.tooLarge { return HTTPError(.responseTooLarge, host: host, detail: "\(state.limit) bytes") }
        if state.canceled.load(ordering: .relaxed) { return HTTPError(.canceled, host: host, detail: detail) }
        switch code {
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            return HTTPError(.cannotConnect, host: host, detail: detail)
        case CURLE_OPERATION_TIMEDOUT:
            return HTTPError(.timedOut, host: host, detail: detail)
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL:
            return HTTPError(.invalidRequest, host: host, detail: detail)
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
             CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS:
            return HTTPError(.tls, host: host, detail: detail)
        default:
            return HTTPError(.transport, host: host, detail: detail)
        }
    }
}

/// What one transfer collects. Used only on the client's thread during
/// `curl_easy_perform`, except `canceled`, which is atomic.
/// `@unchecked Sendable`: it crosses into the cancellation handler, which only touches `canceled`.
final class Transfer: @unchecked Sendable {
    let limit: Int
    let sink: (@Sendable (Int, UnsafeRawBufferPointer) -> Bool)?
    let canceled = Atomic<Bool>(false)
    /// The easy handle while the transfer runs (to read the status from the write callback).
    var handle: UnsafeMutableRawPointer?
    var body: [UInt8] = []
    var headers: [(name: String, value: String)] = []
    var tooLarge = false
    var stoppedBySink = false
    /// Called once with the status and headers (streaming transfers that asked for them).
    var onHead: (@Sendable (Int, [(name: String, value: String)]) -> Void)?

    func announceHead(status: Int) {
        guard let onHead else { return }
        self.onHead = nil
        onHead(status, headers)
    }

    init(limit: Int, sink: (@Sendable (Int, UnsafeRawBufferPointer) -> Bool)?) {
        self.limit = limit
        self.sink = sink
    }
}

private let httpWriteCallback: ccurl_data_callback = { data, size, count, context in
    guard let context, let data else { return 0 }
    let state = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    let length = size * count
    let bytes = UnsafeRawBufferPointer(start: data, count: length)
    if let sink = state.sink {
        var status = 0
        if let handle = state.handle { _ = ccurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status) }
        state.announceHead(status: status)
        guard sink(status, bytes) else {
            state.stoppedBySink = true
            return 0
        }
        return length
    }
    guard state.body.count + length <= state.limit else {
        state.tooLarge = true
        return 0
    }
    state.body.append(contentsOf: bytes)
    return length
}

private let httpHeaderCallback: ccurl_data_callback = { data, size, count, context in
    guard let context, let data else { return 0 }
    let state = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    let length = size * count
    let line = String(decoding: UnsafeRawBufferPointer(start: data, count: length), as: UTF8.self)
    if line.hasPrefix("HTTP/") {
        // A new response (after a redirect or a 100 Continue): its headers replace the previous ones.
        state.headers.removeAll()
    } else if let colon = line.firstIndex(of: ":") {
        let name = line[..<colon].trimmingCharacters(in: .whitespaces)
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        state.headers.append((name, value))
    }
    return length
}

private let httpProgressCallback: ccurl_progress_callback = { context, _, _, _, _ in
    guard let context else { return 0 }
    let state = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    // Non-zero aborts the transfer with CURLE_ABORTED_BY_CALLBACK.
    return state.canceled.load(ordering: .relaxed) ? 1 : 0
}
