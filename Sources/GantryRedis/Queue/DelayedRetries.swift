import GantryCore
import GantryRuntime

/// Retries waiting for their backoff: the sorted set `{ns}:delayed`, each member a job (its
/// target stream and fields as JSON) scored by when it is due (ms). The dispatcher's
/// `RetryScheduler` moves due ones into their streams with a Lua script, atomically.
public struct DelayedRetries: Sendable {
    public let keys: QueueKeys
    /// The format each kind's jobs are written in (see `WorkQueue.jobFormats`).
    private let formats = JobFormatCache()

    public init(keys: QueueKeys) {
        self.keys = keys
    }

    /// Puts jobs in the delayed set, each due at its time (ms since epoch).
    public func schedule(_ jobs: [(job: Job, dueAtMs: Int64)], on redis: RedisConnection) async throws(RedisError) {
        guard !jobs.isEmpty else { return }
        let format = await formats.current(FleetRegistry(keys: keys), on: redis)
        var command = ["ZADD", keys.delayed]
        for (job, due) in jobs {
            command.append(String(due))
            command.append(member(job, format: format[job.kind] ?? .fields))
        }
        try await redis.command(command)
    }

    /// The delayed-set member for a job: its target stream and fields as JSON,
    /// which the mover script reads with cjson.
    func member(_ job: Job, format: JobFormat = .fields) -> String {
        var out = "{\"s\":"
        JSONValue.writeString(keys.stream(job.kind), to: &out)
        out += ",\"f\":["
        for (index, (name, value)) in job.fields(format).enumerated() {
            if index > 0 { out += "," }
            JSONValue.writeString(name, to: &out)
            out += ","
            JSONValue.writeString(value, to: &out)
        }
        out += "]}"
        return out
    }

    /// The job in a delayed-set member; `nil` for a member that is not one.
    func job(fromMember text: String) -> Job? {
        guard case .object(let object)? = JSONValue.parse(text), case .array(let flat)? = object["f"] else { return nil }
        var fields: [(String, String)] = []
        var index = 0
        while index + 1 < flat.count {
            fields.append((flat[index].stringValue ?? "", flat[index + 1].stringValue ?? ""))
            index += 2
        }
        return try? Job(fields: fields)
    }

    /// Moves up to `limit` due retries into their streams atomically and
    /// returns the jobs moved (so their steps can be shown as queued).
    public func moveDue(nowUs: Int64, limit: Int = 500, on redis: RedisConnection) async throws(RedisError) -> [Job] {
        let reply = try await redis.command([
            "EVAL", Scripts.moveDue, "1", keys.delayed, String(nowUs / 1000), String(limit), String(nowUs),
        ])
        return (reply.array ?? []).compactMap { $0.string.flatMap(job(fromMember:)) }
    }

    /// Every attempt waiting in the delayed set.
    public func attempts(on redis: RedisConnection) async throws(RedisError) -> Set<AttemptKey> {
        var present: Set<AttemptKey> = []
        var offset = 0
        while true {
            let reply = try await redis.command(["ZRANGE", keys.delayed, String(offset), String(offset + 999)])
            let members = reply.array ?? []
            for case let job? in members.map({ $0.string.flatMap(job(fromMember:)) }) {
                present.insert(AttemptKey(step: job.key, attempt: job.attempt))
            }
            guard members.count == 1000 else { break }
            offset += 1000
        }
        return present
    }
}
