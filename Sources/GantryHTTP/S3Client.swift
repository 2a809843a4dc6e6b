import Crypto
import Foundation
import GantryCore
import GantryRuntime

/// Where an S3 service is and how to sign for it: AWS itself, or an S3-compatible
/// server (MinIO, Ceph, moto) addressed path-style.
public struct S3Configuration: Sendable {
    /// `https://s3.eu-west-1.amazonaws.com`, or `http://127.0.0.1:9000` for a local server.
    public var endpoint: String
    public var region: String
    public var credentials: AWSCredentials
    /// `endpoint/bucket/key` rather than `bucket.endpoint/key` (what S3-compatible servers want).
    public var pathStyle: Bool

    public init(endpoint: String, region: String, credentials: AWSCredentials, pathStyle: Bool) {
        self.endpoint = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
        self.region = region
        self.credentials = credentials
        self.pathStyle = pathStyle
    }

    /// As the AWS SDKs read it: `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`, else AWS
    /// in `AWS_REGION` / `AWS_DEFAULT_REGION` (default us-east-1); credentials from
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`. A custom
    /// endpoint is addressed path-style. Explicit values win over the environment.
    public static func resolve(
        environment: [String: String], endpoint: String? = nil, region: String? = nil, credentials: AWSCredentials? = nil
    ) throws(S3Error) -> S3Configuration {
        let region = region ?? environment["AWS_REGION"] ?? environment["AWS_DEFAULT_REGION"] ?? "us-east-1"
        let custom = endpoint ?? environment["AWS_ENDPOINT_URL_S3"] ?? environment["AWS_ENDPOINT_URL"]
        guard let credentials = credentials ?? {
            guard let id = environment["AWS_ACCESS_KEY_ID"], let secret = environment["AWS_SECRET_ACCESS_KEY"],
                  !id.isEmpty, !secret.isEmpty else { return nil }
            return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: environment["AWS_SESSION_TOKEN"])
        }() else {
            throw S3Error(.configuration, "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or name secrets in the step")
        }
        if let custom {
            guard custom.hasPrefix("http://") || custom.hasPrefix("https://") else {
                throw S3Error(.configuration, "S3 endpoint '\(custom)': give an http:// or https:// URL")
            }
            return S3Configuration(endpoint: custom, region: region, credentials: credentials, pathStyle: true)
        }
        return S3Configuration(endpoint: "https://s3.\(region).amazonaws.com", region: region, credentials: credentials, pathStyle: false)
    }
}

/// `s3://bucket/key/or/prefix`.
public struct S3Location: Sendable, Equatable, CustomStringConvertible {
    public var bucket: String
    public var key: String

    public init(bucket: String, key: String) {
        self.bucket = bucket
        self.key = key
    }

    public init?(_ url: String) {
        guard url.hasPrefix("s3://") else { return nil }
        let rest = url.dropFirst(5)
        let bucket = rest.prefix { $0 != "/" }
        guard !bucket.isEmpty, bucket.allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "-" || $0 == "." }) else { return nil }
        self.bucket = String(bucket)
        self.key = String(rest.dropFirst(bucket.count + 1))
    }

    public var description: String { "s3://\(bucket)/\(key)" }
}

/// A refusal from S3 (its error code and message) or a problem reaching it. The
/// description never holds a credential.
public struct S3Error: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case configuration
        /// S3 answered with an error document.
        case service(status: Int, code: String)
        /// No answer (cannot connect, timed out …).
        case transport
        /// The object is not there (404 on HEAD/GET).
        case notFound
    }

    public let kind: Kind
    public let message: String

    init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// 5xx, 429 / SlowDown, or no answer: another try may work.
    public var isRetryable: Bool {
        switch kind {
        case .transport: return true
        case .service(let status, let code): return status >= 500 || status == 429 || code == "SlowDown" || code == "RequestTimeout"
        case .configuration, .notFound: return false
        }
    }

    public var description: String { message }
}

/// The S3 operations backups need, signed with SigV4 over libcurl: single and
/// multipart uploads (with per-part retry), HEAD, streaming GET, listing, tags and
/// lifecycle rules.
public struct S3Client: Sendable {
    public let configuration: S3Configuration
    private let http: HTTPClient
    private let signer: SigV4Signer
    /// Tries per request on 5xx, SlowDown and network errors.
    public var attempts = 4

    public init(_ configuration: S3Configuration, http: HTTPClient = HTTPClient(name: "gantry-s3")) {
        self.configuration = configuration
        self.http = http
        self.signer = SigV4Signer(credentials: configuration.credentials, region: configuration.region, service: "s3")
    }

    public struct Object: Sendable, Equatable {
        public var key: String
        public var size: Int64
        public var lastModified: String
        public var metadata: [String: String]
    }

    // MARK: Objects

    /// PUT one object; returns its ETag.
    @discardableResult
    public func putObject(_ location: S3Location, body: [UInt8], headers: [(name: String, value: String)] = []) async throws(S3Error) -> String {
        let response = try await send(.put, location, body: body, headers: headers)
        return response.header("ETag") ?? ""
    }

    /// The object's size, date and `x-amz-meta-*` values; nil when it does not exist.
    public func head(_ location: S3Location) async throws(S3Error) -> Object? {
        do {
            let response = try await send(.head, location)
            var metadata: [String: String] = [:]
            for (name, value) in response.headers where name.lowercased().hasPrefix("x-amz-meta-") {
                metadata[String(name.lowercased().dropFirst("x-amz-meta-".count))] = value
            }
            return Object(
                key: location.key, size: Int64(response.header("Content-Length") ?? "") ?? 0,
                lastModified: response.header("Last-Modified") ?? "", metadata: metadata
            )
        } catch where error.kind == .notFound {
            return nil
        }
    }

    /// GET the object as a whole (small objects: manifests, checksums).
    public func get(_ location: S3Location) async throws(S3Error) -> [UInt8] {
        try await send(.get, location).body
    }

    /// GET the object, handing the body to `onData` as it arrives (not retried: the
    /// caller has consumed part of it).
    public func download(_ location: S3Location, onData: @escaping @Sendable (UnsafeRawBufferPointer) -> Bool) async throws(S3Error) {
        let request = signed(.get, location, query: "", body: nil, headers: [])
        let failure = ErrorBody()
        let response: HTTPResponse
        do {
            response = try await http.stream(request) { status, bytes in
                if status >= 300 { failure.append(bytes); return true }
                return onData(bytes)
            }
        } catch {
            throw S3Error(.transport, "S3 GET \(location): \(error)")
        }
        if response.status >= 300 {
            throw Self.error(status: response.status, body: failure.bytes, what: "GET \(location)")
        }
    }

    public func delete(_ location: S3Location) async throws(S3Error) {
        _ = try await send(.delete, location)
    }

    // MARK: Multipart

    public func createMultipartUpload(_ location: S3Location, headers: [(name: String, value: String)] = []) async throws(S3Error) -> String {
        let response = try await send(.post, location, query: "uploads=", body: [], headers: headers)
        guard let id = XML.values("UploadId", in: response.text).first else {
            throw S3Error(.service(status: response.status, code: "NoUploadId"), "S3 did not return an UploadId for \(location)")
        }
        return id
    }

    /// Uploads one part (retried on its own); returns its ETag.
    public func uploadPart(_ location: S3Location, uploadID: String, number: Int, body: [UInt8]) async throws(S3Error) -> String {
        let query = "partNumber=\(number)&uploadId=\(SigV4Signer.encode(uploadID, keepSlash: false))"
        let response = try await send(.put, location, query: query, body: body)
        guard let etag = response.header("ETag") else {
            throw S3Error(.service(status: response.status, code: "NoETag"), "S3 returned no ETag for part \(number) of \(location)")
        }
        return etag
    }

    public func completeMultipartUpload(_ location: S3Location, uploadID: String, parts: [(number: Int, etag: String)]) async throws(S3Error) {
        let body = "<CompleteMultipartUpload>"
            + parts.map { "<Part><PartNumber>\($0.number)</PartNumber><ETag>\(XML.escape($0.etag))</ETag></Part>" }.joined()
            + "</CompleteMultipartUpload>"
        let query = "uploadId=\(SigV4Signer.encode(uploadID, keepSlash: false))"
        let response = try await send(.post, location, query: query, body: Array(body.utf8), headers: [("Content-Type", "application/xml")])
        // S3 may answer 200 with an error document when the completion failed late.
        if let code = XML.values("Code", in: response.text).first {
            throw S3Error(.service(status: response.status, code: code), "S3 CompleteMultipartUpload \(location): \(code) \(XML.values("Message", in: response.text).first ?? "")")
        }
    }

    public func abortMultipartUpload(_ location: S3Location, uploadID: String) async throws(S3Error) {
        _ = try await send(.delete, location, query: "uploadId=\(SigV4Signer.encode(uploadID, keepSlash: false))")
    }

    // MARK: Buckets

    /// Objects under `prefix`, every page.
    public func list(bucket: String, prefix: String) async throws(S3Error) -> [Object] {
        var objects: [Object] = []
        var token: String?
        repeat {
            var query = "list-type=2&prefix=\(SigV4Signer.encode(prefix, keepSlash: false))"
            if let token { query += "&continuation-token=\(SigV4Signer.encode(token, keepSlash: false))" }
            let response = try await send(.get, S3Location(bucket: bucket, key: ""), query: query)
            for contents in XML.elements("Contents", in: response.text) {
                guard let key = XML.values("Key", in: contents).first else { continue }
                objects.append(Object(
                    key: key, size: Int64(XML.values("Size", in: contents).first ?? "") ?? 0,
                    lastModified: XML.values("LastModified", in: contents).first ?? "", metadata: [:]
                ))
            }
            token = XML.values("IsTruncated", in: response.text).first == "true"
                ? XML.values("NextContinuationToken", in: response.text).first : nil
        } while token != nil
        return objects
    }

    public func createBucket(_ bucket: String) async throws(S3Error) {
        let body = configuration.region == "us-east-1" ? [] : Array(
            "<CreateBucketConfiguration><LocationConstraint>\(configuration.region)</LocationConstraint></CreateBucketConfiguration>".utf8)
        _ = try await send(.put, S3Location(bucket: bucket, key: ""), body: body)
    }

    /// The lifecycle rules that expire backups by their retention tag: one rule per
    /// retention period, for objects under `prefix` tagged `gantry-retention-days=N`.
    public static func retentionLifecycle(prefix: String, days: [Int]) -> String {
        let rules = Set(days).sorted().map { days in
            """
            <Rule><ID>gantry-retention-\(days)d</ID><Filter><And><Prefix>\(XML.escape(prefix))</Prefix>\
            <Tag><Key>gantry-retention-days</Key><Value>\(days)</Value></Tag></And></Filter><Status>Enabled</Status>\
            <Expiration><Days>\(days)</Days></Expiration></Rule>
            """
        }
        return "<LifecycleConfiguration>\(rules.joined())</LifecycleConfiguration>"
    }

    /// Replaces the bucket's lifecycle configuration with `xml` (`retentionLifecycle`).
    public func putLifecycle(bucket: String, xml: String) async throws(S3Error) {
        let bytes = Array(xml.utf8)
        // S3 requires a Content-MD5 (or a checksum) on this call.
        let md5 = Data(Insecure.MD5.hash(data: bytes)).base64EncodedString()
        _ = try await send(.put, S3Location(bucket: bucket, key: ""), query: "lifecycle=", body: bytes,
                           headers: [("Content-Type", "application/xml"), ("Content-MD5", md5)])
    }

    public func tags(_ location: S3Location) async throws(S3Error) -> [String: String] {
        let response = try await send(.get, location, query: "tagging=")
        var tags: [String: String] = [:]
        for tag in XML.elements("Tag", in: response.text) {
            if let key = XML.values("Key", in: tag).first { tags[key] = XML.values("Value", in: tag).first ?? "" }
        }
        return tags
    }

    // MARK: Requests

    private func url(_ location: S3Location, query: String) -> (url: String, host: String, path: String) {
        let scheme = configuration.endpoint.hasPrefix("https://") ? "https://" : "http://"
        let authority = String(configuration.endpoint.dropFirst(scheme.count).prefix { $0 != "/" })
        let host = configuration.pathStyle ? authority : "\(location.bucket).\(authority)"
        let path = configuration.pathStyle
            ? "/\(location.bucket)" + (location.key.isEmpty ? "" : "/\(location.key)")
            : "/\(location.key)"
        let url = scheme + host + SigV4Signer.encode(path, keepSlash: true) + (query.isEmpty ? "" : "?\(query)")
        return (url, host, path)
    }

    private func signed(
        _ method: HTTPRequest.Method, _ location: S3Location, query: String, body: [UInt8]?, headers: [(name: String, value: String)]
    ) -> HTTPRequest {
        let (url, host, path) = url(location, query: query)
        var headers = headers
        // Without it libcurl labels a body application/x-www-form-urlencoded, which S3 would keep as the
        // object's type and some servers parse as a form (leaving the object empty).
        if body != nil, !headers.contains(where: { $0.name.lowercased() == "content-type" }) {
            headers.append(("Content-Type", "application/octet-stream"))
        }
        let payloadHash = Hex.encode(SHA256.hash(data: body ?? []))
        let toSign = headers + [("Host", host)]
        let signature = signer.sign(
            method: method.rawValue, path: path, query: query, headers: toSign, payloadHash: payloadHash,
            amzDate: SigV4Signer.amzDate(ms: WallClock.nowMs()), s3: true
        )
        return HTTPRequest(
            method: method, url: url, headers: headers + signature.headers, body: body,
            timeout: .seconds(300), connectTimeout: .seconds(10), maxResponseBytes: 64 << 20
        )
    }

    private func send(
        _ method: HTTPRequest.Method, _ location: S3Location, query: String = "", body: [UInt8]? = nil,
        headers: [(name: String, value: String)] = []
    ) async throws(S3Error) -> HTTPResponse {
        var wait = Duration.milliseconds(500)
        var attempt = 1
        while true {
            // Signed anew each try: the signature carries the time.
            let request = signed(method, location, query: query, body: body, headers: headers)
            let failure: S3Error
            do {
                let response = try await http.send(request)
                if response.status < 300 { return response }
                if response.status == 404, method == .head || (method == .get && query.isEmpty) {
                    throw S3Error(.notFound, "\(location) does not exist")
                }
                failure = Self.error(status: response.status, body: response.body, what: "\(method.rawValue) \(location)")
            } catch let error as S3Error {
                throw error
            } catch let error as HTTPError {
                if error.code == .canceled { throw S3Error(.transport, "S3 \(method.rawValue) \(location) was canceled") }
                failure = S3Error(.transport, "S3 \(method.rawValue) \(location): \(error)")
            } catch {
                failure = S3Error(.transport, "S3 \(method.rawValue) \(location): \(error)")
            }
            guard failure.isRetryable, attempt < attempts, !Task.isCancelled else { throw failure }
            attempt += 1
            try? await Task.sleep(for: wait)
            wait *= 2
        }
    }

    static func error(status: Int, body: [UInt8], what: String) -> S3Error {
        let text = String(decoding: body, as: UTF8.self)
        let code = XML.values("Code", in: text).first ?? "HTTP\(status)"
        let message = XML.values("Message", in: text).first.map { ": \($0)" } ?? ""
        return S3Error(.service(status: status, code: code), "S3 \(what) refused: \(code)\(message)")
    }
}

/// Collects an error body that arrives through a streaming callback.
private final class ErrorBody: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [UInt8] = []

    func append(_ bytes: UnsafeRawBufferPointer) {
        lock.withLock { if storage.count < 64 * 1024 { storage += bytes } }
    }

    var bytes: [UInt8] { lock.withLock { storage } }
}

/// Just enough XML for S3's answers: the text of elements by name.
enum XML {
    static func elements(_ name: String, in text: String) -> [String] {
        var out: [String] = []
        var rest = Substring(text)
        while let open = rest.range(of: "<\(name)>"), let close = rest[open.upperBound...].range(of: "</\(name)>") {
            out.append(String(rest[open.upperBound..<close.lowerBound]))
            rest = rest[close.upperBound...]
        }
        return out
    }

    static func values(_ name: String, in text: String) -> [String] {
        elements(name, in: text).map(unescape)
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func unescape(_ text: String) -> String {
        text.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&#34;", with: "\"").replacingOccurrences(of: "&amp;", with: "&")
    }
}
