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

    /// Takes canceled attempts that no worker was given yet out of Redis: their retries from
    /// the delayed set, then their entries from the kinds' streams (only those after the
    /// group's last delivered id; one page of 1,000 entries per atomic step). `members` are
    /// `cancelMember`s. The delayed set goes first, so a retry moved to its stream meanwhile
    /// is found there. Entries already delivered are left to their workers.
    public func withdraw(_ members: Set<String>, kinds: [String], on redis: RedisConnection) async throws(RedisError) -> [WithdrawnAttempt] {
        guard !members.isEmpty else { return [] }
        let wanted = members.sorted()
        var withdrawn: [WithdrawnAttempt] = []
        let delayed = try await redis.command(["EVAL", Scripts.withdrawDelayed, "1", keys.delayed] + wanted).orThrow()
        for member in delayed.array ?? [] {
            if let job = member.string.flatMap(job(fromDelayedMember:)) { withdrawn.append(WithdrawnAttempt(job: job, entryID: nil)) }
        }
        for kind in kinds {
            var start = ""
            repeat {
                let reply = try await redis.command(
                    ["EVAL", Scripts.withdrawWaiting, "1", keys.stream(kind), QueueKeys.workerGroup, start, "1000"] + wanted
                ).orThrow()
                guard let parts = reply.array, parts.count == 2 else { throw .protocolViolation("the withdraw script answered \(reply)") }
                start = parts[0].string ?? ""
                for entry in parts[1].array ?? [] {
                    guard let pair = entry.array, pair.count == 2, let id = pair[0].string,
                          let job = try? Job(fields: pair[1].pairs ?? []) else { continue }
                    withdrawn.append(WithdrawnAttempt(job: job, entryID: id))
                }
            } while !start.isEmpty
        }
        return withdrawn
    }

    /// Which of these attempts (`cancelMember`s) are on the cancel list.
    public func canceled(among members: [String], on redis: RedisConnection) async throws(RedisError) -> Set<String> {
        guard !members.isEmpty else { return [] }
        let reply = try await redis.command(["ZMSCORE", keys.canceled] + members).orThrow()
        var found: Set<String> = []
        for (member, score) in zip(members, reply.array ?? []) where !score.isNull { found.insert(member) }
        return found
    }
}

/// A canceled attempt taken out of Redis before any worker was given it.
public struct WithdrawnAttempt: Sendable {
    public let job: Job
    /// Its stream entry; nil when it was a retry waiting in the delayed set.
    public let entryID: String?
}
