import Foundation

/// Why an HTTP exchange did not produce a response. The description names the
/// host, never the query string or a header value, which may carry a secret.
public struct HTTPError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        case invalidRequest
        case cannotConnect
        case timedOut
        case responseTooLarge
        case canceled
        case tls
        case transport
    }

    public let code: Code
    public let host: String
    public let detail: String

    public init(_ code: Code, host: String, detail: String) {
        self.code = code
        self.host = host
        self.detail = detail
    }

    /// Retrying may help: the server was not reached, or the exchange broke off.
    public var isTransient: Bool {
        code == .cannotConnect || code == .timedOut || code == .transport
    }

    public var description: String {
        switch code {
        case .invalidRequest: "invalid HTTP request to \(host): \(detail)"
        case .cannotConnect: "cannot connect to \(host): \(detail)"
        case .timedOut: "request to \(host) timed out: \(detail)"
        case .responseTooLarge: "response from \(host) is larger than \(detail)"
        case .canceled: "request to \(host) was canceled"
        case .tls: "TLS with \(host) failed: \(detail)"
        case .transport: "request to \(host) failed: \(detail)"
        }
    }

    /// `scheme://host:port` of a URL, without user info, path or query.
    static func hostPart(of url: String) -> String {
        guard let schemeEnd = url.range(of: "://") else { return "(invalid URL)" }
        var rest = url[schemeEnd.upperBound...]
        if let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) { rest = rest[..<slash] }
        if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        return String(url[..<schemeEnd.upperBound]) + rest
    }
}
