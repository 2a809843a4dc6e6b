import GantryCore
import GantryRuntime
import Synchronization

extension WorkQueue {
    /// The format to write each kind's jobs in, from the workers' heartbeats: the newest one
    /// every live worker of the kind reads (a heartbeat's `jobs`; workers of releases before
    /// the compact format send none and read only `.fields`). Kinds without a live worker
    /// are left out, and get `.fields`: the next worker to start may be of an earlier release.
    public func jobFormats(nowMs: Int64, on redis: RedisConnection) async throws(RedisError) -> [String: JobFormat] {
        try await FleetRegistry(keys: keys).jobFormats(nowMs: nowMs, on: redis)
    }
}

/// `WorkQueue.jobFormats`, read again at most once a second by a queue that writes jobs.
/// A worker of an earlier release that starts within that second may be handed compact jobs
/// it cannot read: it dead-letters them, and the reconciler enqueues their steps again (in
/// the format it then reads). So no worker of an earlier release should start after an
/// upgrade (docs/operations.md, "Upgrading").
final class JobFormatCache: Sendable {
    private struct Entry {
        var readAt: ContinuousClock.Instant
        var formats: [String: JobFormat]
    }

    static let maxAge = Duration.seconds(1)
    private let entry = Mutex<Entry?>(nil)

    /// The formats by kind; on a Redis error `[:]` (every kind `.fields`, which all workers read).
    func current(_ fleet: FleetRegistry, on redis: RedisConnection) async -> [String: JobFormat] {
        let now = ContinuousClock.now
        if let fresh = entry.withLock({ $0.flatMap { now - $0.readAt < Self.maxAge ? $0.formats : nil } }) { return fresh }
        guard let formats = try? await fleet.jobFormats(nowMs: WallClock.nowMs(), on: redis) else { return [:] }
        entry.withLock { $0 = Entry(readAt: now, formats: formats) }
        return formats
    }
}
