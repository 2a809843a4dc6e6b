/// One HTTP request: what to send and the limits that bound it.
public struct HTTPRequest: Sendable {
    public enum Method: String, Sendable {
        case get = "GET", head = "HEAD", post = "POST", put = "PUT", patch = "PATCH", delete = "DELETE"
    }

    public var method: Method
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]?
    /// The whole exchange, connect included; enforced by libcurl itself.
    public var timeout: Duration
    public var connectTimeout: Duration
    /// Redirects are followed only when asked for (a redirect can leak a bearer token to another host).
    public var followRedirects: Bool
    /// A response body larger than this fails the request instead of filling memory.
    public var maxResponseBytes: Int
    /// TLS peer and host verification; on unless a test server needs it off.
    public var verifyTLS: Bool
    /// A PEM file of the certificate authorities to trust instead of the system's (a private CA).
    public var caFile: String?

    public init(
        method: Method = .get, url: String, headers: [(name: String, value: String)] = [], body: [UInt8]? = nil,
        timeout: Duration = .seconds(30), connectTimeout: Duration = .seconds(5), followRedirects: Bool = false,
        maxResponseBytes: Int = 16 << 20, verifyTLS: Bool = true
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.followRedirects = followRedirects
        self.maxResponseBytes = maxResponseBytes
        self.verifyTLS = verifyTLS
    }

    /// A request whose body is `text` (UTF-8) with the given content type.
    public static func text(
        _ method: Method, _ url: String, _ text: String, contentType: String = "application/json",
        headers: [(name: String, value: String)] = [], timeout: Duration = .seconds(30)
    ) -> HTTPRequest {
        HTTPRequest(
            method: method, url: url, headers: [("Content-Type", contentType)] + headers,
            body: Array(text.utf8), timeout: timeout
        )
    }
}

/// A complete response.
public struct HTTPResponse: Sendable {
    public var status: Int
    /// Header names as received; look them up with `header(_:)`, which ignores case.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Time from the start of the request to the last byte.
    public var elapsed: Duration

    public init(status: Int, headers: [(name: String, value: String)], body: [UInt8], elapsed: Duration) {
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed
    }

    /// The first header with this name, case-insensitively.
    public func header(_ name: String) -> String? {
        let lowered = name.lowercased()
        return headers.first { $0.name.lowercased() == lowered }?.value
    }

    /// The body as UTF-8 text (invalid bytes replaced).
    public var text: String { String(decoding: body, as: UTF8.self) }
}
