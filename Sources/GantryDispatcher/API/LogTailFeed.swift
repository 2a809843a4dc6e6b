import GantryCore
import GantryRedis
import Logging
import Synchronization

/// Wakes the API's followed logs (`GET /v1/runs/{id}/logs?follow=true`, what `gantry logs -f`
/// reads) when their attempt's stream grows, and lends them one connection to read it.
///
/// A followed log used to hold a Redis connection of its own, and so a thread (hiredis
/// blocks): a thousand CI jobs following logs were a thousand threads. Now one blocking
/// read (`XREAD BLOCK` over every followed stream) watches them all, and the followers
/// read what is new, without blocking, through `reader`. A follower subscribes before
/// its first read, so a line written between that read and its wait still wakes it; and
/// every follower is woken each `fallback` as well, in case the watcher was away.
final class LogTailFeed: Sendable {
    /// How long a follower waits without news before it reads anyway.
    let fallback: Duration
    /// The connection followers read through (non-blocking reads only).
    let reader: RedisConnection
    let streams: StepLogStream

    struct Subscription: Sendable {
        let key: AttemptKey
        let id: UInt64
        /// One element per wake-up; wake-ups that arrive together are coalesced.
        let news: AsyncStream<Void>
    }

    private struct Watched {
        /// The id of the newest entry the watcher has seen.
        var cursor: String
        var followers: [UInt64: AsyncStream<Void>.Continuation]
    }

    /// How long one watching read blocks: a newly followed log joins the watch when it returns.
    private static let watchBlock: Duration = .milliseconds(250)
    private let watcher: RedisConnection
    private let logger: Logger
    private let watched = Mutex<[AttemptKey: Watched]>([:])
    private let nextID = Atomic<UInt64>(0)
    /// Wakes the watcher when the first log is followed.
    private let firstFollower: (stream: AsyncStream<Void>, continuation: AsyncStream<Void>.Continuation)

    init(keys: QueueKeys, redisURL: RedisURL, replica: String, fallback: Duration = .seconds(1), logger: Logger) {
        streams = StepLogStream(keys: keys)
        self.fallback = fallback
        // The watcher blocks for up to `watchBlock`: its command timeout must be longer.
        watcher = RedisConnection(url: redisURL, configuration: .init(commandTimeout: .seconds(10), clientName: "gantry-api-logs-watch-\(replica)"))
        reader = RedisConnection(url: redisURL, configuration: .init(commandTimeout: .seconds(10), clientName: "gantry-api-logs-\(replica)"))
        self.logger = logger
        firstFollower = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Follows one attempt's log from `cursor` (the id of the last entry the follower has, `0` for none).
    func subscribe(_ key: AttemptKey, from cursor: String) -> Subscription {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = nextID.add(1, ordering: .relaxed).newValue
        watched.withLock { $0[key, default: Watched(cursor: cursor, followers: [:])].followers[id] = continuation }
        firstFollower.continuation.yield()
        return Subscription(key: key, id: id, news: stream)
    }

    func unsubscribe(_ subscription: Subscription) {
        let continuation = watched.withLock { watched -> AsyncStream<Void>.Continuation? in
            let removed = watched[subscription.key]?.followers.removeValue(forKey: subscription.id)
            if watched[subscription.key]?.followers.isEmpty == true { watched[subscription.key] = nil }
            return removed
        }
        continuation?.finish()
    }

    /// Wakes every follower each `fallback`, in case the watcher missed news, until the task is cancelled.
    func runFallback() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: fallback)
            let continuations = watched.withLock { $0.values.flatMap { Array($0.followers.values) } }
            for continuation in continuations { continuation.yield() }
        }
    }

    /// The number of logs being watched (for tests and the API's own figures).
    var watchedCount: Int { watched.withLock { $0.count } }

    /// Watches the followed logs until the task is cancelled.
    func run() async {
        var idle = firstFollower.stream.makeAsyncIterator()
        var failures = 0
        while !Task.isCancelled {
            let cursors = watched.withLock { $0.mapValues(\.cursor) }
            if cursors.isEmpty {
                guard await idle.next() != nil else { break }
                continue
            }
            do {
                let newest = try await streams.newest(after: cursors, block: Self.watchBlock, on: watcher)
                failures = 0
                if !newest.isEmpty { wake(newest) }
            } catch {
                if Task.isCancelled { break }
                failures += 1
                if failures == 1 {
                    logger.warning("cannot watch followed logs; they fall back to reading every \(fallback)", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: .milliseconds(min(2_000, 100 * failures)))
            }
        }
    }

    private func wake(_ newest: [AttemptKey: String]) {
        let continuations = watched.withLock { watched -> [AsyncStream<Void>.Continuation] in
            var woken: [AsyncStream<Void>.Continuation] = []
            for (key, cursor) in newest {
                guard watched[key] != nil else { continue }
                watched[key]?.cursor = cursor
                if let followers = watched[key]?.followers.values { woken += followers }
            }
            return woken
        }
        for continuation in continuations { continuation.yield() }
    }
}
