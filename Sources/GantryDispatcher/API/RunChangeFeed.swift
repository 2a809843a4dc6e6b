import GantryCore
import GantryRedis
import Logging
import Synchronization

/// Wakes the API's event streams (`GET /v1/runs/{id}/events`, what `gantry submit
/// --wait` follows) when their run changes, instead of each stream re-reading its
/// run five times a second: a thousand CI jobs waiting on a thousand runs were five
/// thousand run views a second.
///
/// Every replica announces the runs its committed transitions changed in the
/// `changes` stream (`Effector`); every API replica reads that stream and wakes the
/// streams of those runs. An announcement can be lost (the process died between
/// commit and announcement, Redis was away), so a stream also re-reads its run after
/// `fallback` without news (`gantry dispatcher --events-fallback`, default 2 s).
final class RunChangeFeed: Sendable {
    /// How long a stream waits without news before it re-reads its run anyway.
    let fallback: Duration

    struct Subscription: Sendable {
        let runID: String
        let id: UInt64
        /// One element per wake-up; wake-ups that arrive together are coalesced.
        let changes: AsyncStream<Void>
    }

    private let queue: WorkQueue
    private let redis: RedisConnection
    private let logger: Logger
    private let subscribers = Mutex<[String: [UInt64: AsyncStream<Void>.Continuation]]>([:])
    private let nextID = Atomic<UInt64>(0)

    init(keys: QueueKeys, redisURL: RedisURL, clientName: String, fallback: Duration, logger: Logger) {
        queue = WorkQueue(keys: keys)
        self.fallback = fallback
        // A blocking read of up to 5 s: the command timeout must be longer.
        redis = RedisConnection(url: redisURL, configuration: .init(commandTimeout: .seconds(10), clientName: clientName))
        self.logger = logger
    }

    func subscribe(_ runID: String) -> Subscription {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = nextID.add(1, ordering: .relaxed).newValue
        subscribers.withLock { $0[runID, default: [:]][id] = continuation }
        return Subscription(runID: runID, id: id, changes: stream)
    }

    func unsubscribe(_ subscription: Subscription) {
        let continuation = subscribers.withLock { subscribers -> AsyncStream<Void>.Continuation? in
            let removed = subscribers[subscription.runID]?.removeValue(forKey: subscription.id)
            if subscribers[subscription.runID]?.isEmpty == true { subscribers[subscription.runID] = nil }
            return removed
        }
        continuation?.finish()
    }

    /// Wakes one subscription (its fallback timer).
    func poke(_ subscription: Subscription) {
        let continuation = subscribers.withLock { $0[subscription.runID]?[subscription.id] }
        continuation?.yield()
    }

    /// A stream's fallback timer: wakes `subscription` every `fallback` until the task is
    /// cancelled. The stream runs it as its child task (`async let`), so it ends with the stream.
    func fallbackTimer(_ subscription: Subscription) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: fallback)
            poke(subscription)
        }
    }

    private func wake(_ runIDs: Set<String>) {
        let continuations = subscribers.withLock { subscribers in
            runIDs.flatMap { subscribers[$0].map { Array($0.values) } ?? [] }
        }
        for continuation in continuations { continuation.yield() }
    }

    /// Reads the changes stream until the task is cancelled.
    func run() async {
        var last: String?
        var failures = 0
        while !Task.isCancelled {
            do {
                // From what is new when the feed (re)starts; streams saw the rest through their fallback.
                let after: String
                if let last { after = last } else { after = try await RunChanges(keys: queue.keys).latest(on: redis) }
                let (runIDs, next) = try await RunChanges(keys: queue.keys).read(after: after, block: .seconds(5), on: redis)
                last = next
                failures = 0
                if !runIDs.isEmpty { wake(Set(runIDs)) }
            } catch {
                if Task.isCancelled { break }
                failures += 1
                if failures == 1 {
                    logger.warning("cannot read run changes; event streams fall back to re-reading every \(fallback)", metadata: ["error": "\(error)"])
                }
                last = nil
                try? await Task.sleep(for: .milliseconds(min(2_000, 100 * failures)))
            }
        }
    }
}
