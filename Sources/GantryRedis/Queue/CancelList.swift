import GantryCore

/// Cancels travel from the dispatcher to workers through the sorted set `{ns}:canceled` of
/// attempt names scored by the time of the cancel. Workers poll it (one cheap call every
/// half second, whatever the job rate) and stop what they hold or are handed.
public struct CancelList: Sendable {
    public let keys: QueueKeys

    public init(keys: QueueKeys) {
        self.keys = keys
    }

    /// The member naming one attempt (`run/step/attempt`).
    public static func member(_ key: AttemptKey) -> String {
        "\(key.step.runID)/\(key.step.stepID)/\(key.attempt)"
    }

    /// Asks the workers to stop these attempts.
    public func add(_ attempts: [AttemptKey], nowMs: Int64, on redis: RedisConnection) async throws(RedisError) {
        guard !attempts.isEmpty else { return }
        var command = ["ZADD", keys.canceled]
        for key in attempts {
            command.append(String(nowMs))
            command.append(Self.member(key))
        }
        _ = try await redis.command(command)
    }

    /// Cancels recorded at or after `sinceMs`, with the latest score seen (pass it back next time).
    public func since(ms sinceMs: Int64, on redis: RedisConnection) async throws(RedisError) -> (members: [String], latestMs: Int64) {
        Self.parse(try await redis.command(sinceCommand(ms: sinceMs)), sinceMs: sinceMs)
    }

    func sinceCommand(ms sinceMs: Int64) -> [String] {
        ["ZRANGEBYSCORE", keys.canceled, String(sinceMs), "+inf", "WITHSCORES"]
    }

    static func parse(_ reply: RedisValue, sinceMs: Int64) -> (members: [String], latestMs: Int64) {
        var members: [String] = []
        var latest = sinceMs
        for (member, score) in reply.pairs ?? [] {
            members.append(member)
            latest = max(latest, Int64(Double(score) ?? 0))
        }
        return (members, latest)
    }

    /// Forgets cancels older than `beforeMs`.
    public func prune(beforeMs: Int64, on redis: RedisConnection) async throws(RedisError) {
        _ = try await redis.command(["ZREMRANGEBYSCORE", keys.canceled, "-inf", "(\(beforeMs)"])
    }

    /// Which of these attempts (`member`s) are on the cancel list.
    public func present(among members: [String], on redis: RedisConnection) async throws(RedisError) -> Set<String> {
        guard !members.isEmpty else { return [] }
        let reply = try await redis.command(["ZMSCORE", keys.canceled] + members)
        var found: Set<String> = []
        for (member, score) in zip(members, reply.array ?? []) where !score.isNull { found.insert(member) }
        return found
    }
}
