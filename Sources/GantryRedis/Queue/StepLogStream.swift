import GantryCore

/// Step logs for live tailing: each attempt's lines go to a capped stream of their
/// own (`{ns}:log:RUN:STEP:ATTEMPT`), with an `end` entry when the attempt ends.
/// The Postgres ledger keeps the lasting record (an excerpt); these streams expire.
public struct StepLogStream: Sendable {
    public let keys: QueueKeys
    /// Lines kept per attempt; older ones are trimmed.
    public var maxLines = 10_000
    /// How long a log stays after its last line.
    public var retention: Duration = .seconds(7 * 86_400)

    public init(keys: QueueKeys) {
        self.keys = keys
    }

    /// One line of a log, or its end.
    public enum Entry: Sendable, Equatable {
        case line(String)
        case end(status: String)
    }

    /// Appends lines (and the end marker, when given) of several attempts in one round trip.
    public func append(_ batches: [(key: AttemptKey, lines: [String], end: String?)], on redis: RedisConnection) async throws(RedisError) {
        var commands: [[String]] = []
        for batch in batches where !batch.lines.isEmpty || batch.end != nil {
            let stream = keys.log(batch.key)
            for line in batch.lines {
                commands.append(["XADD", stream, "MAXLEN", "~", String(maxLines), "*", "l", line])
            }
            if let end = batch.end { commands.append(["XADD", stream, "*", "end", end]) }
            commands.append(["PEXPIRE", stream, String(retention.milliseconds)])
        }
        guard !commands.isEmpty else { return }
        for reply in try await redis.pipeline(commands) { _ = try reply.orThrow() }
    }

    /// Entries after `after` (`0` for the start), at most `count`; with `block`, waits up to that long for new ones.
    public func read(_ key: AttemptKey, after: String, count: Int = 500, block: Duration?, on redis: RedisConnection) async throws(RedisError) -> [(id: String, entry: Entry)] {
        var command = ["XREAD", "COUNT", String(count)]
        if let block { command += ["BLOCK", String(max(1, block.milliseconds))] }
        command += ["STREAMS", keys.log(key), after]
        let reply = try await redis.command(command)
        guard let streams = reply.array, let stream = streams.first?.array, stream.count == 2 else { return [] }
        var out: [(id: String, entry: Entry)] = []
        for item in stream[1].array ?? [] {
            guard let parts = item.array, parts.count == 2, let id = parts[0].string, let fields = parts[1].pairs else { continue }
            if let line = fields.first(where: { $0.0 == "l" })?.1 {
                out.append((id, .line(line)))
            } else if let end = fields.first(where: { $0.0 == "end" })?.1 {
                out.append((id, .end(status: end)))
            }
        }
        return out
    }
}
