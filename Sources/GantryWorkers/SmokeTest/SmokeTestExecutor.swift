import Foundation
import GantryCore
import GantryHTTP

/// The `smoke-test` kind: HTTP checks against a deployed service.
///
/// ```yaml
/// with:
///   checks:
///     - { name: api, url: "https://api.example.com/healthz", expect_status: 200, max_latency_ms: 300 }
///     - { name: billing, url: "…/health", method: POST, headers: { X-Probe: "1" }, body: "{}",
///         expect_body_contains: "UP", expect_json: { status: UP, "checks.0.name": db }, timeout: 5s }
///   attempts: 5        # per check, until it passes
///   interval: 10s      # between attempts of a check
/// ```
/// Outputs `checks` (each check's name, passed, status, latency_ms, attempts, problem),
/// `passed` and `failed`. The step fails when a check is still failing after its attempts.
public struct SmokeTestExecutor: StepExecutor {
    public let kind = "smoke-test"

    public init() {}

    struct Check {
        var name: String
        var request: HTTPRequest
        var expectStatus: Int
        var bodyContains: String?
        var json: [(path: String, value: JSONValue)]
        var maxLatencyMs: Int?
    }

    public func execute(_ context: StepContext) async throws -> StepOutputs {
        let inputs = try context.decodeInputs(SmokeTestInputs.self)
        let checks = try Self.checks(inputs.checks)
        let attempts = max(1, inputs.attempts ?? 1)
        let interval = inputs.interval ?? .seconds(5)
        let client = HTTPClient(name: "gantry-smoke")
        var results: [JSONValue] = []
        var failures: [String] = []
        for check in checks {
            var problem: String?
            var status = 0
            var latencyMs = 0.0
            var tries = 0
            for attempt in 1...attempts {
                tries = attempt
                do throws(HTTPError) {
                    let response = try await client.send(check.request)
                    status = response.status
                    let (seconds, attoseconds) = response.elapsed.components
                    latencyMs = Double(seconds) * 1_000 + Double(attoseconds) / 1e15
                    problem = Self.problem(check, response, latencyMs: latencyMs)
                } catch {
                    if error.code == .canceled { throw CancellationError() }
                    status = 0
                    problem = "\(error)"
                }
                context.log.write("check \(check.name): \(problem ?? "passed") (status \(status), \(String(format: "%.0f", latencyMs)) ms, attempt \(attempt)/\(attempts))")
                if problem == nil || attempt == attempts { break }
                try await Task.sleep(for: interval)
            }
            if let problem { failures.append("check '\(check.name)' \(problem) after \(tries) attempt\(tries == 1 ? "" : "s")") }
            results.append(.object([
                "name": .string(check.name), "passed": .bool(problem == nil), "status": .number(Double(status)),
                "latency_ms": .number((latencyMs * 10).rounded() / 10), "attempts": .number(Double(tries)),
                "problem": problem.map(JSONValue.string) ?? .null,
            ]))
        }
        if let first = failures.first {
            let more = failures.count > 1 ? " (and \(failures.count - 1) more)" : ""
            throw StepFailure("smoke test failed: \(first)\(more)")
        }
        return ["checks": .array(results), "passed": .number(Double(checks.count)), "failed": .number(0)]
    }

    /// What is wrong with a response, or nil when the check passes.
    static func problem(_ check: Check, _ response: HTTPResponse, latencyMs: Double) -> String? {
        if response.status != check.expectStatus { return "expected status \(check.expectStatus), got \(response.status)" }
        if let needle = check.bodyContains, !response.text.contains(needle) { return "body does not contain '\(needle)'" }
        if !check.json.isEmpty {
            guard let document = JSONValue.parse(response.text) else { return "body is not JSON" }
            for (path, expected) in check.json {
                let actual = value(at: path, in: document)
                if actual != expected {
                    return "expected \(path) = \(expected.jsonText), got \(actual?.jsonText ?? "nothing")"
                }
            }
        }
        if let limit = check.maxLatencyMs, latencyMs > Double(limit) {
            return "took \(String(format: "%.0f", latencyMs)) ms, more than max_latency_ms \(limit)"
        }
        return nil
    }

    /// The value at a dotted path (`data.items.0.id`; numbers index arrays).
    static func value(at path: String, in document: JSONValue) -> JSONValue? {
        var current: JSONValue? = document
        for part in path.split(separator: ".").map(String.init) {
            switch current {
            case .object(let fields)?: current = fields[part]
            case .array(let items)?: current = Int(part).flatMap { $0 >= 0 && $0 < items.count ? items[$0] : nil }
            default: return nil
            }
        }
        return current
    }

    /// The requests of the checks; a malformed one fails the step for good, naming the field.
    static func checks(_ written: [SmokeTestInputs.Check]) throws -> [Check] {
        guard !written.isEmpty else {
            throw StepFailure("with.checks: give at least one check ({ name, url, expect_status … })", retryable: false)
        }
        return try written.enumerated().map { index, check -> Check in
            guard check.url.hasPrefix("http://") || check.url.hasPrefix("https://") else {
                throw StepFailure("with.checks[\(index)].url: give an http:// or https:// URL", retryable: false)
            }
            let headers = (check.headers ?? [:]).sorted { $0.key < $1.key }.map { (name: $0.key, value: $0.value) }
            let timeout = check.timeout ?? .seconds(10)
            let json = (check.expectJSON ?? [:]).sorted { $0.key < $1.key }.map { (path: $0.key, value: $0.value) }
            return Check(
                name: check.name ?? "check \(index + 1)",
                request: HTTPRequest(
                    method: Self.method(check.method ?? .get), url: check.url, headers: headers, body: check.body.map { Array($0.utf8) },
                    timeout: timeout, connectTimeout: min(timeout, .seconds(5)),
                    followRedirects: check.followRedirects ?? false
                ),
                expectStatus: check.expectStatus ?? 200,
                bodyContains: check.expectBodyContains,
                json: json, maxLatencyMs: check.maxLatencyMs
            )
        }
    }

    static func method(_ method: SmokeTestInputs.Method) -> HTTPRequest.Method {
        switch method {
        case .get: .get
        case .head: .head
        case .post: .post
        case .put: .put
        case .patch: .patch
        case .delete: .delete
        }
    }
}
