/// Decides whether a finished attempt is retried, and after how long.
///
/// One policy serves every step kind and the pipeline language: attempts are
/// capped by `maxAttempts`, delays grow exponentially from `initial` up to
/// `max`, and jitter spreads retries so a failing dependency is not hit by
/// every step at once (AWS's "full jitter" is the default).
public struct RetryPolicy: Sendable, Equatable {
    /// How the computed delay is randomised.
    public enum Jitter: String, Sendable, Equatable, CaseIterable {
        /// Exactly the exponential delay.
        case none
        /// Uniform in `[0, delay]`.
        case full
        /// Half the delay plus uniform in `[0, delay/2]`.
        case equal
    }

    /// What kind of failure an attempt had, for `retryOn`.
    public enum FailureClass: String, Sendable, Equatable, CaseIterable {
        /// The executor reported failure (non-zero exit, failed check, error).
        case failed
        /// The attempt exceeded its timeout.
        case timeout = "timed_out"
        /// The worker holding the attempt went silent (lease expired).
        case lost
    }

    /// Total attempts allowed, the first included; at least 1.
    public var maxAttempts: Int
    /// Delay before the second attempt.
    public var initial: Duration
    /// Upper bound of any single delay.
    public var max: Duration
    public var jitter: Jitter
    /// Exit codes that may be retried; `nil` means any non-zero code.
    public var onExitCodes: Set<Int32>?
    /// Failure classes that may be retried.
    public var retryOn: Set<FailureClass>

    public init(
        maxAttempts: Int = 3,
        initial: Duration = .seconds(2),
        max: Duration = .seconds(60),
        jitter: Jitter = .full,
        onExitCodes: Set<Int32>? = nil,
        retryOn: Set<FailureClass> = Set(FailureClass.allCases)
    ) {
        self.maxAttempts = Swift.max(1, maxAttempts)
        self.initial = initial
        self.max = max
        self.jitter = jitter
        self.onExitCodes = onExitCodes
        self.retryOn = retryOn
    }

    /// No retries: the first failure is final.
    public static let never = RetryPolicy(maxAttempts: 1)

    /// Exponential backoff with full jitter, the usual choice.
    public static func exponentialJitter(
        maxAttempts: Int,
        initial: Duration = .seconds(2),
        max: Duration = .seconds(60)
    ) -> RetryPolicy {
        RetryPolicy(maxAttempts: maxAttempts, initial: initial, max: max, jitter: .full)
    }

    /// The delay before attempt `nextAttempt` (2 for the first retry).
    ///
    /// `initial * 2^(nextAttempt-2)`, capped at `max`, then jittered with `random`,
    /// which tests seed to make the result exact.
    public func delay(beforeAttempt nextAttempt: Int, using random: inout some RandomNumberGenerator) -> Duration {
        let exponent = Swift.min(Swift.max(nextAttempt - 2, 0), 62)
        let initialMs = Swift.max(initial.milliseconds, 0)
        let capMs = Swift.max(max.milliseconds, 0)
        let (scaled, overflow) = initialMs.multipliedReportingOverflow(by: Int64(1) << exponent)
        let base = overflow ? capMs : Swift.min(scaled, capMs)
        let ms: Int64
        switch jitter {
        case .none: ms = base
        case .full: ms = base == 0 ? 0 : Int64.random(in: 0...base, using: &random)
        case .equal: ms = base / 2 + (base == 0 ? 0 : Int64.random(in: 0...(base - base / 2), using: &random))
        }
        return .milliseconds(ms)
    }

    /// Whether a failure of this class (and exit code, when it has one) may be retried,
    /// ignoring how many attempts are left.
    public func allows(_ failure: FailureClass, exitCode: Int32?) -> Bool {
        guard retryOn.contains(failure) else { return false }
        if failure == .failed, let exitCode, let codes = onExitCodes {
            return codes.contains(exitCode)
        }
        return true
    }

    // MARK: Stored form

    /// The policy as stored with each step (durations in ms).
    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "max_attempts": .number(Double(maxAttempts)),
            "initial_ms": .number(Double(initial.milliseconds)),
            "max_ms": .number(Double(max.milliseconds)),
            "jitter": .string(jitter.rawValue),
            "retry_on": .array(retryOn.map(\.rawValue).sorted().map(JSONValue.string)),
        ]
        if let onExitCodes {
            object["on_exit_codes"] = .array(onExitCodes.sorted().map { .number(Double($0)) })
        }
        return .object(object)
    }

    /// Reads the stored form; missing fields take their defaults, `nil` if it is not an object.
    public init?(json: JSONValue) {
        guard case .object(let object) = json else { return nil }
        let defaults = RetryPolicy()
        let codes: Set<Int32>? = object["on_exit_codes"].flatMap { value -> Set<Int32>? in
            guard case .array(let items) = value else { return nil }
            return Set(items.compactMap { $0.intValue.map { Int32(truncatingIfNeeded: $0) } })
        }
        let classes: Set<FailureClass> = {
            guard case .array(let items)? = object["retry_on"] else { return defaults.retryOn }
            return Set(items.compactMap { $0.stringValue.flatMap(FailureClass.init(rawValue:)) })
        }()
        self.init(
            maxAttempts: object["max_attempts"]?.intValue ?? defaults.maxAttempts,
            initial: object["initial_ms"]?.intValue.map { .milliseconds($0) } ?? defaults.initial,
            max: object["max_ms"]?.intValue.map { .milliseconds($0) } ?? defaults.max,
            jitter: object["jitter"]?.stringValue.flatMap(Jitter.init(rawValue:)) ?? defaults.jitter,
            onExitCodes: codes,
            retryOn: classes
        )
    }
}
