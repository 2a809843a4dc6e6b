import Synchronization

/// A request budget per token: a bucket of `burst` requests refilled at `rate` per second.
/// A token past it is answered 429 with `Retry-After`, before any database work, so that one
/// token (a runaway script, a leaked one) cannot take the API from the others.
final class TokenRateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    /// Requests per second per token; 0 turns the limit off.
    let rate: Double
    let burst: Double
    private let buckets = Mutex<[String: Bucket]>([:])

    init(rate: Double, burst: Double) {
        self.rate = rate
        self.burst = max(1, burst)
    }

    /// The bucket every token without one of its own draws from: tokens not (yet) found in the
    /// database. A flood of made-up tokens empties this one, never a known token's.
    static let unverified = "(unverified)"

    /// Nil when the request may go; otherwise the seconds to wait before the next one would.
    /// A token gets a bucket of its own once `register` saw it is real.
    func admit(_ key: String, now: ContinuousClock.Instant = .now) -> Int? {
        guard rate > 0 else { return nil }
        return buckets.withLock { buckets in
            let owner = buckets[key] != nil ? key : Self.unverified
            var bucket = buckets[owner] ?? Bucket(tokens: burst, updated: now)
            let elapsed = now - bucket.updated
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            bucket.tokens = min(burst, bucket.tokens + seconds * rate)
            bucket.updated = now
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                buckets[owner] = bucket
                return nil
            }
            buckets[owner] = bucket
            return max(1, Int(((1 - bucket.tokens) / rate).rounded(.up)))
        }
    }

    /// Gives a token found in the database a bucket of its own (full, less the request that found it).
    func register(_ key: String, now: ContinuousClock.Instant = .now) {
        guard rate > 0 else { return }
        buckets.withLock { buckets in
            guard buckets[key] == nil else { return }
            // Idle buckets are full ones, the same as none: forget them when there are many.
            if buckets.count > 10_000 { buckets = buckets.filter { now - $0.value.updated < .seconds(burst / rate) } }
            buckets[key] = Bucket(tokens: burst - 1, updated: now)
        }
    }
}
