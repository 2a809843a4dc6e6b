import Foundation

/// Sends a request again while the answer says a later try may succeed: no
/// response at all (cannot connect, timed out, broken off), 429, or 5xx. A 4xx
/// other than 429 is the caller's mistake and is returned at once. `Retry-After`
/// (seconds or an HTTP date) is honoured up to `maxWait`; otherwise the waits
/// double from `initialBackoff`.
public struct HTTPRetry: Sendable {
    public var attempts: Int
    public var initialBackoff: Duration
    /// The longest single wait, whatever the server asks.
    public var maxWait: Duration

    public init(attempts: Int = 4, initialBackoff: Duration = .seconds(1), maxWait: Duration = .seconds(60)) {
        self.attempts = max(1, attempts)
        self.initialBackoff = initialBackoff
        self.maxWait = maxWait
    }

    /// Whether a response with this status is worth another try.
    public static func isRetryable(status: Int) -> Bool { status == 429 || (500...599).contains(status) }

    /// The last response (retryable or not) once tries run out; throws the last
    /// transport error when no try got a response. `onRetry` hears each wait and why.
    public func send(
        _ request: HTTPRequest, with client: HTTPClient, onRetry: (_ reason: String, _ wait: Duration) -> Void = { _, _ in }
    ) async throws -> HTTPResponse {
        try await send({ request }, with: client, onRetry: onRetry)
    }

    /// Sends the request `make` builds for each try (a signed request with a fresh timestamp).
    public func send(
        _ make: () throws -> HTTPRequest, with client: HTTPClient, onRetry: (_ reason: String, _ wait: Duration) -> Void = { _, _ in }
    ) async throws -> HTTPResponse {
        var backoff = initialBackoff
        for attempt in 1...attempts {
            let wait: Duration
            let reason: String
            let request = try make()
            do throws(HTTPError) {
                let response = try await client.send(request)
                guard Self.isRetryable(status: response.status), attempt < attempts else { return response }
                reason = "status \(response.status)"
                wait = response.retryAfter(now: Date()).map { min($0, maxWait) } ?? backoff
            } catch {
                if error.code == .canceled { throw CancellationError() }
                guard error.isTransient, attempt < attempts else { throw error }
                reason = "\(error)"
                wait = backoff
            }
            onRetry(reason, wait)
            try await Task.sleep(for: wait)
            backoff = min(backoff * 2, maxWait)
        }
        preconditionFailure("the loop returns or throws on its last attempt")
    }
}

extension HTTPResponse {
    /// How long the server asks to wait (`Retry-After: 120` or an HTTP date), if it says.
    public func retryAfter(now: Date) -> Duration? {
        guard let value = header("Retry-After")?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if let seconds = Int(value) { return seconds >= 0 ? .seconds(seconds) : nil }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: value) else { return nil }
        let seconds = date.timeIntervalSince(now)
        return .milliseconds(Int64(max(0, seconds) * 1_000))
    }
}
