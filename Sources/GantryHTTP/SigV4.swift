import Crypto
import Foundation
import GantryCore

/// AWS credentials; the secret key and session token never appear in a description.
public struct AWSCredentials: Sendable, CustomStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    public var description: String { "AWSCredentials(\(accessKeyID), secret redacted)" }
}

/// AWS Signature Version 4 (`AWS4-HMAC-SHA256`), checked against AWS's published
/// test suite (`../shared/testdata/aws-sig-v4-test-suite`).
///
/// S3 differs from other services in two ways, selected with `s3: true`: the path
/// is neither normalized nor encoded twice, and the payload hash travels in the
/// `x-amz-content-sha256` header (it may be `UNSIGNED-PAYLOAD`).
public struct SigV4Signer: Sendable {
    public var credentials: AWSCredentials
    public var region: String
    public var service: String

    public init(credentials: AWSCredentials, region: String, service: String) {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// The intermediate texts and the result of signing one request.
    public struct Signature: Sendable {
        public var canonicalRequest: String
        public var stringToSign: String
        public var authorization: String
        /// Headers to add to the request (Authorization, and the date/token headers when they were not given).
        public var headers: [(name: String, value: String)]
    }

    /// Signs a request.
    /// - Parameters:
    ///   - path: the path as sent (`/bucket/key`); `query` without the `?`.
    ///   - headers: the headers to sign; `host` must be among them. `x-amz-date` is added when missing.
    ///   - payloadHash: hex SHA-256 of the body, or `UNSIGNED-PAYLOAD` (S3 only).
    ///   - amzDate: `YYYYMMDDTHHMMSSZ`.
    ///   - signSessionToken: put `x-amz-security-token` in the signed headers (most services)
    ///     rather than adding it after signing.
    public func sign(
        method: String, path: String, query: String, headers: [(name: String, value: String)], payloadHash: String,
        amzDate: String, s3: Bool = false, signSessionToken: Bool = true
    ) -> Signature {
        var headers = headers
        var added: [(name: String, value: String)] = []
        if !headers.contains(where: { $0.name.lowercased() == "x-amz-date" }) {
            headers.append(("X-Amz-Date", amzDate))
            added.append(("X-Amz-Date", amzDate))
        }
        if s3, !headers.contains(where: { $0.name.lowercased() == "x-amz-content-sha256" }) {
            headers.append(("x-amz-content-sha256", payloadHash))
            added.append(("x-amz-content-sha256", payloadHash))
        }
        if let token = credentials.sessionToken, signSessionToken, !headers.contains(where: { $0.name.lowercased() == "x-amz-security-token" }) {
            headers.append(("X-Amz-Security-Token", token))
            added.append(("X-Amz-Security-Token", token))
        }
        let (canonicalHeaders, signedHeaders) = Self.canonicalHeaders(headers)
        let canonicalRequest = [
            method.uppercased(), Self.canonicalURI(path, s3: s3), Self.canonicalQuery(query),
            canonicalHeaders, signedHeaders, payloadHash,
        ].joined(separator: "\n")
        let date = String(amzDate.prefix(8))
        let scope = "\(date)/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, Self.hex(SHA256.hash(data: Data(canonicalRequest.utf8)))].joined(separator: "\n")
        var key = SymmetricKey(data: Data("AWS4\(credentials.secretAccessKey)".utf8))
        for part in [date, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(part.utf8), using: key)))
        }
        let signature = Self.hex(HMAC<SHA256>.authenticationCode(for: Data(stringToSign.utf8), using: key))
        let authorization = "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
        if let token = credentials.sessionToken, !signSessionToken {
            added.append(("X-Amz-Security-Token", token))
        }
        return Signature(
            canonicalRequest: canonicalRequest, stringToSign: stringToSign, authorization: authorization,
            headers: [("Authorization", authorization)] + added
        )
    }

    /// `YYYYMMDDTHHMMSSZ` for a time in ms since the epoch.
    public static func amzDate(ms: Int64) -> String {
        let extended = Timestamp.iso8601(ms: ms)  // 2015-08-30T12:36:00.000Z
        let date = extended.prefix(10).replacingOccurrences(of: "-", with: "")
        let time = extended.dropFirst(11).prefix(8).replacingOccurrences(of: ":", with: "")
        return "\(date)T\(time)Z"
    }

    // MARK: Canonical forms

    static func canonicalURI(_ path: String, s3: Bool) -> String {
        let raw = path.isEmpty ? "/" : path
        if s3 { return encode(raw, keepSlash: true) }
        // Other services: remove dot segments and empty segments, then encode each segment
        // (a path that arrives percent-encoded is encoded again, as AWS does).
        var segments: [Substring] = []
        for segment in raw.split(separator: "/", omittingEmptySubsequences: true) {
            if segment == "." { continue }
            if segment == ".." { _ = segments.popLast(); continue }
            segments.append(segment)
        }
        var out = "/" + segments.map { encode(String($0), keepSlash: false) }.joined(separator: "/")
        if raw.hasSuffix("/"), !segments.isEmpty { out += "/" }
        return out
    }

    static func canonicalQuery(_ query: String) -> String {
        guard !query.isEmpty else { return "" }
        var pairs: [(String, String)] = []
        for item in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = decode(String(parts[0]))
            let value = parts.count > 1 ? decode(String(parts[1])) : ""
            pairs.append((encode(name, keepSlash: false), encode(value, keepSlash: false)))
        }
        pairs.sort { $0.0 == $1.0 ? $0.1 < $1.1 : $0.0 < $1.0 }
        return pairs.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    /// Lowercased names, trimmed values with inner runs of spaces collapsed, repeated names
    /// joined with commas in the order given, sorted by name.
    static func canonicalHeaders(_ headers: [(name: String, value: String)]) -> (String, String) {
        var values: [String: [String]] = [:]
        var order: [String] = []
        for (name, value) in headers {
            let key = name.lowercased().trimmingCharacters(in: .whitespaces)
            if values[key] == nil { order.append(key) }
            let trimmed = value.trimmingCharacters(in: .whitespaces)
                .split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
            values[key, default: []].append(trimmed)
        }
        let names = order.sorted()
        let canonical = names.map { "\($0):\(values[$0]!.joined(separator: ","))\n" }.joined()
        return (canonical, names.joined(separator: ";"))
    }

    /// RFC 3986 encoding of everything but the unreserved characters (and `/` when asked).
    static func encode(_ text: String, keepSlash: Bool) -> String {
        PercentEncoding.encode(text, keepSlash: keepSlash)
    }

    static func decode(_ text: String) -> String {
        text.removingPercentEncoding ?? text
    }

    /// SHA-256 of bytes.
    public static func sha256(_ bytes: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: Data(bytes))) }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        Hex.encode(digest)
    }
}
