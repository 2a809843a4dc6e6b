import GantryCore

extension WorkQueue {
    /// Takes canceled attempts that no worker was given yet out of Redis: their retries from
    /// the delayed set, then their entries from the kinds' streams (only those after the
    /// group's last delivered id; one page of 1,000 entries per atomic step). `members` are
    /// `CancelList.member`s. The delayed set goes first, so a retry moved to its stream meanwhile
    /// is found there. Entries already delivered are left to their workers.
    public func withdraw(_ members: Set<String>, kinds: [String], on redis: RedisConnection) async throws(RedisError) -> [WithdrawnAttempt] {
        guard !members.isEmpty else { return [] }
        let wanted = members.sorted()
        var withdrawn: [WithdrawnAttempt] = []
        let delayed = try await redis.command(["EVAL", Scripts.withdrawDelayed, "1", keys.delayed] + wanted)
        for member in delayed.array ?? [] {
            if let job = member.string.flatMap(DelayedRetries(keys: keys).job(fromMember:)) { withdrawn.append(WithdrawnAttempt(job: job, entryID: nil)) }
        }
        for kind in kinds {
            var start = ""
            repeat {
                let reply = try await redis.command(
                    ["EVAL", Scripts.withdrawWaiting, "1", keys.stream(kind), QueueKeys.workerGroup, start, "1000"] + wanted
                )
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
}

/// A canceled attempt taken out of Redis before any worker was given it.
public struct WithdrawnAttempt: Sendable {
    public let job: Job
    /// Its stream entry; nil when it was a retry waiting in the delayed set.
    public let entryID: String?
}
