/// `smoke-test`'s `with:` (schema: `StepInputSchemas.smokeTest`; read by SmokeTestExecutor).
/// Every value is resolved: a check's URL, headers and expectations may name a run's values.
public struct SmokeTestInputs: StepInputs {
    public var checks: [Check]
    /// Tries per check, until it passes (default 1; less than 1 reads as 1).
    public var attempts: Int?
    /// Between attempts of one check (default 5s).
    public var interval: Duration?

    public enum CodingKeys: String, InputKey {
        case checks, attempts, interval
    }

    public static var nested: [CodingKeys: any StepInputs.Type] { [.checks: Check.self] }

    /// One HTTP check.
    public struct Check: StepInputs {
        /// Default `check N`.
        public var name: String?
        public var url: String
        /// Default GET; any case.
        public var method: Method?
        /// Values are one line each (a number is sent as its text).
        public var headers: [String: String]?
        public var body: String?
        /// Of the whole request (default 10s).
        public var timeout: Duration?
        /// Default 200.
        public var expectStatus: Int?
        public var expectBodyContains: String?
        /// Dotted paths (`checks.0.name`) to the JSON value expected there, compared as written.
        public var expectJSON: [String: JSONValue]?
        public var maxLatencyMs: Int?
        /// Default false.
        public var followRedirects: Bool?

        public enum CodingKeys: String, InputKey {
            case name, url, method, headers, body, timeout
            case expectStatus = "expect_status"
            case expectBodyContains = "expect_body_contains"
            case expectJSON = "expect_json"
            case maxLatencyMs = "max_latency_ms"
            case followRedirects = "follow_redirects"
        }
    }

    /// An HTTP method, written in any case (`get` is `GET`).
    public enum Method: String, InputWord {
        case get = "GET", head = "HEAD", post = "POST", put = "PUT", patch = "PATCH", delete = "DELETE"

        public init(from decoder: any Decoder) throws {
            let text = try decoder.singleValueContainer().decode(String.self)
            guard let method = Method(rawValue: text.uppercased()) else {
                throw DecodingError.dataCorrupted(DecodingError.Context(
                    codingPath: decoder.codingPath,
                    debugDescription: "'\(text.uppercased().prefix(80))': use GET, HEAD, POST, PUT, PATCH or DELETE"
                ))
            }
            self = method
        }
    }
}
