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
        return Self.entries(stream[1])
    }

    /// For several logs at once, the id of the last entry after each one's cursor (at most
    /// `count` entries on from it), waiting up to `block` when none has any: one blocking read
    /// watches every followed log of an API replica. Logs without news are absent.
    public func newest(after cursors: [AttemptKey: String], count: Int = 500, block: Duration, on redis: RedisConnection) async throws(RedisError) -> [AttemptKey: String] {
        guard !cursors.isEmpty else { return [:] }
        let ordered = Array(cursors)
        var byStream: [String: AttemptKey] = [:]
        var command = ["XREAD", "COUNT", String(count), "BLOCK", String(max(1, block.milliseconds)), "STREAMS"]
        for (key, _) in ordered {
            let stream = keys.log(key)
            byStream[stream] = key
            command.append(stream)
        }
        command += ordered.map(\.value)
        var newest: [AttemptKey: String] = [:]
        for stream in try await redis.command(command).array ?? [] {
            guard let parts = stream.array, parts.count == 2, let name = parts[0].string, let key = byStream[name],
                  let last = parts[1].array?.last?.array?.first?.string else { continue }
            newest[key] = last
        }
        return newest
    }

    private static func entries(_ reply: RedisValue) -> [(id: String, entry: Entry)] {
        var out: [(id: String, entry: Entry)] = []
        for item in reply.array ?? [] {
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
