import GantryCore
import GantryRuntime

/// Which runs changed, for the API's event streams: the capped stream `{ns}:changes`, each
/// entry a comma-separated list of run ids whose transition committed. Every API replica
/// reads it (no group) to wake the streams of those runs.
public struct RunChanges: Sendable {
    public let keys: QueueKeys

    public init(keys: QueueKeys) {
        self.keys = keys
    }

    /// Says that these runs changed (after their transition committed). Readers only ever
    /// want what is new, so entries older than 30 s are trimmed (an entry can list a
    /// thousand runs; a cap by count alone let the stream hold hundreds of megabytes).
    public func publish(_ runIDs: [String], on redis: RedisConnection) async throws(RedisError) {
        guard !runIDs.isEmpty else { return }
        try await redis.command(command(publishing: runIDs))
    }

    func command(publishing runIDs: [String]) -> [String] {
        // Entry ids are Redis's clock in ms; a clock of ours far ahead would only trim early,
        // and event streams then see the change at their fallback.
        ["XADD", keys.changes, "MINID", "~", "\(WallClock.nowMs() - 30_000)-0", "*", "runs", runIDs.joined(separator: ",")]
    }

    /// The id of the newest change entry, to read from ("0-0" when there is none yet).
    public func latest(on redis: RedisConnection) async throws(RedisError) -> String {
        let reply = try await redis.command(["XREVRANGE", keys.changes, "+", "-", "COUNT", "1"])
        return StreamReplies.entries(reply).first?.id ?? "0-0"
    }

    /// Change entries after `lastID`, waiting up to `block` for one; returns the run ids
    /// and the id to read after next time.
    public func read(after lastID: String, block: Duration, on redis: RedisConnection) async throws(RedisError) -> (runIDs: [String], lastID: String) {
        let reply = try await redis.command([
            "XREAD", "COUNT", "1000", "BLOCK", String(max(block.milliseconds, 1)), "STREAMS", keys.changes, lastID,
        ])
        var runIDs: [String] = []
        var last = lastID
        for (_, entry) in StreamReplies.streams(reply) {
            last = entry.id
            for (name, value) in entry.fields where name == "runs" {
                // Up to a thousand ids an entry: split on bytes (splitting Characters was a twelfth
                // of the bench's CPU, and every API event stream reads these too).
                runIDs += value.words(separatedBy: UInt8(ascii: ",")).compactMap { $0.isEmpty ? nil : String($0) }
            }
        }
        return (runIDs, last)
    }
}
