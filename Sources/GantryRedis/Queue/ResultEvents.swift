import GantryCore

/// Attempt outcomes on their way from workers to dispatchers: the stream `{ns}:events`, one
/// entry per batch a worker recorded (`AttemptResult.eventFields`), read by the consumer
/// group `dispatchers`. Workers write it in the same `MULTI` as their acknowledgements
/// (`WorkQueue.complete`); the dispatcher's `EventApplier` lanes read and acknowledge it.
public struct ResultEvents: Sendable {
    public let keys: QueueKeys

    public init(keys: QueueKeys) {
        self.keys = keys
    }

    /// Creates the stream and its consumer group if missing.
    public func prepare(on redis: RedisConnection) async throws(RedisError) {
        let reply = try await redis.send(prepareCommand)
        if case .error(let message) = reply, !message.hasPrefix("BUSYGROUP") { throw .reply(message) }
    }

    var prepareCommand: [String] { ["XGROUP", "CREATE", keys.events, QueueKeys.dispatcherGroup, "0", "MKSTREAM"] }

    /// The `XADD` of one event holding a batch of outcomes: the items' fields one after another.
    func appendCommand(_ events: [[(String, String)]]) -> [String] {
        var xadd = ["XADD", keys.events, "*"]
        xadd.reserveCapacity(3 + 2 * events.count)
        for event in events {
            for (name, value) in event {
                xadd.append(name)
                xadd.append(value)
            }
        }
        return xadd
    }

    /// Reads result events for the dispatcher `consumer`. With `pending: true` it
    /// returns the events this consumer was given before and never acknowledged
    /// (after a restart), without blocking.
    public func read(consumer: String, count: Int, block: Duration, pending: Bool = false, on redis: RedisConnection) async throws(RedisError) -> [EventEntry] {
        var command = ["XREADGROUP", "GROUP", QueueKeys.dispatcherGroup, consumer, "COUNT", String(count)]
        if !pending { command += ["BLOCK", String(max(block.milliseconds, 1))] }
        command += ["STREAMS", keys.events, pending ? "0" : ">"]
        let reply = try await redis.send(command)
        if case .error(let message) = reply {
            guard message.hasPrefix("NOGROUP") else { throw .reply(message) }
            try await prepare(on: redis)
            return []
        }
        return StreamReplies.streams(reply).map(\.entry)
    }

    /// Takes over events another dispatcher was given and left unacknowledged for `minIdle`.
    public func claimStale(consumer: String, minIdle: Duration, count: Int, on redis: RedisConnection) async throws(RedisError) -> [EventEntry] {
        let reply = try await redis.send([
            "XAUTOCLAIM", keys.events, QueueKeys.dispatcherGroup, consumer, String(minIdle.milliseconds), "0-0", "COUNT", String(count),
        ])
        if case .error(let message) = reply {
            if message.hasPrefix("NOGROUP") { return [] }
            throw .reply(message)
        }
        guard let parts = reply.array, parts.count >= 2 else { return [] }
        return StreamReplies.entries(parts[1])
    }

    /// Acknowledges applied events and trims what every dispatcher is done with.
    public func acknowledge(_ ids: [String], on redis: RedisConnection) async throws(RedisError) {
        guard !ids.isEmpty else { return }
        _ = try await redis.pipeline([
            ["XACK", keys.events, QueueKeys.dispatcherGroup] + ids,
            Scripts.trimCommand(keys.events, group: QueueKeys.dispatcherGroup),
        ])
    }
}
