import GantryCore

/// Cancels travel from the dispatcher to workers through a sorted set of attempt
/// names scored by the time of the cancel. Workers poll it (one cheap call every
/// half second, whatever the job rate) and stop what they hold or are handed.
extension WorkQueue {
    /// The member naming one attempt.
    public static func cancelMember(_ key: AttemptKey) -> String {
        "\(key.step.runID)/\(key.step.stepID)/\(key.attempt)"
    }

    /// Asks the workers to stop these attempts.
    public func cancel(_ attempts: [AttemptKey], nowMs: Int64, on redis: RedisConnection) async throws(RedisError) {
        guard !attempts.isEmpty else { return }
        var command = ["ZADD", keys.canceled]
        for key in attempts {
            command.append(String(nowMs))
            command.append(WorkQueue.cancelMember(key))
        }
        _ = try await redis.command(command).orThrow()
    }

    /// Cancels recorded at or after `sinceMs`, with the latest score seen (pass it back next time).
    public func cancels(sinceMs: Int64, on redis: RedisConnection) async throws(RedisError) -> (members: [String], latestMs: Int64) {
        Self.parseCancels(try await redis.command(cancelsCommand(sinceMs: sinceMs)).orThrow(), sinceMs: sinceMs)
    }

    func cancelsCommand(sinceMs: Int64) -> [String] {
        ["ZRANGEBYSCORE", keys.canceled, String(sinceMs), "+inf", "WITHSCORES"]
    }

    static func parseCancels(_ reply: RedisValue, sinceMs: Int64) -> (members: [String], latestMs: Int64) {
        var members: [String] = []
        var latest = sinceMs
        for (member, score) in reply.pairs ?? [] {
            members.append(member)
            latest = max(latest, Int64(Double(score) ?? 0))
        }
        return (members, latest)
    }

    /// Forgets cancels older than `beforeMs`.
    public func pruneCancels(beforeMs: Int64, on redis: RedisConnection) async throws(RedisError) {
        _ = try await redis.command(["ZREMRANGEBYSCORE", keys.canceled, "-inf", "(\(beforeMs)"]).orThrow()
    }
}
