import GantryCore
import GantryRedis
import GantryRuntime
import Synchronization

/// The live fleet for the API's run views, read from the workers' heartbeats at most every
/// `maxAge`: a thousand `submit --wait` streams re-reading their runs cost one `HGETALL`
/// per half second, not one each. While Redis cannot be read the views show no step as
/// running and none as unserved (`FleetSnapshot.unknown`).
final class FleetCache: Sendable {
    private let registry: FleetRegistry
    private let redis: RedisConnection
    private let maxAge: Duration
    private let cached = Mutex<(snapshot: FleetSnapshot, at: ContinuousClock.Instant)?>(nil)

    init(keys: QueueKeys, redis: RedisConnection, maxAge: Duration = .milliseconds(500)) {
        registry = FleetRegistry(keys: keys)
        self.redis = redis
        self.maxAge = maxAge
    }

    func current() async -> FleetSnapshot {
        if let cached = cached.withLock({ $0 }), ContinuousClock.now - cached.at < maxAge { return cached.snapshot }
        do {
            let snapshot = try await registry.snapshot(nowMs: WallClock.nowMs(), on: redis)
            cached.withLock { $0 = (snapshot, .now) }
            return snapshot
        } catch {
            return .unknown
        }
    }
}
