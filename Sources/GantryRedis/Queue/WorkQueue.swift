import GantryCore
import GantryRuntime

/// The job streams (`{ns}:q:<kind>`, consumer group `workers`) and their dead letters: the
/// queue protocol on Redis streams, as DESIGN.md lays it out.
///
/// - delivery and lease are one step: `XREADGROUP` puts the entry in the pending
///   list under the worker's name;
/// - the owner renews with a Lua script that checks ownership and resets idle time;
/// - the reaper finds entries idle past their lease (`XPENDING IDLE`) and takes
///   them with `XCLAIM` (which re-checks the idle time atomically);
/// - acks are pipelined with the batch's result event in one `MULTI`; acknowledged entries are
///   trimmed in bulk behind the oldest pending one, not deleted one by one.
///
/// The other key families have types of their own — `DelayedRetries`, `ResultEvents`,
/// `RunChanges`, `CancelList`, `FleetRegistry`, `StepLogStream` — and the few operations
/// that must change two families in one round trip (enqueue and announce the runs; record
/// the batch's event and acknowledge it; read deliveries and then the cancel list; withdraw
/// canceled attempts from the streams and the delayed set) are here, built from their commands.
public struct WorkQueue: Sendable {
    public let keys: QueueKeys
    /// The format each kind's jobs are written in (see `jobFormats`).
    private let formats = JobFormatCache()

    public init(keys: QueueKeys = QueueKeys()) {
        self.keys = keys
    }

    // MARK: Producing

    /// Appends jobs to their kinds' streams in one round trip.
    ///
    /// `announcing` lists runs whose change to announce in the same round trip (see `publishChanges`).
    public func enqueue(_ jobs: [Job], announcing runIDs: [String] = [], on redis: RedisConnection) async throws(RedisError) {
        guard !jobs.isEmpty else { return try await RunChanges(keys: keys).publish(runIDs, on: redis) }
        let format = await formats.current(FleetRegistry(keys: keys), on: redis)
        var commands = jobs.map { job in
            var command = ["XADD", keys.stream(job.kind), "*"]
            command.reserveCapacity(3 + 2 * 10)
            for (name, value) in job.fields(format[job.kind] ?? .fields) {
                command.append(name)
                command.append(value)
            }
            return command
        }
        if !runIDs.isEmpty { commands.append(RunChanges(keys: keys).command(publishing: runIDs)) }
        for reply in try await redis.pipeline(commands) { _ = try reply.orThrow() }
    }

    // MARK: Consuming

    /// Creates the consumer groups of these kinds' streams (and the streams) if missing.
    /// The group starts at id 0: nothing already enqueued is skipped.
    public func prepare(kinds: [String], on redis: RedisConnection) async throws(RedisError) {
        let commands = kinds.map { ["XGROUP", "CREATE", keys.stream($0), QueueKeys.workerGroup, "0", "MKSTREAM"] }
            + [ResultEvents(keys: keys).prepareCommand]
        for reply in try await redis.pipeline(commands) {
            if case .error(let message) = reply, !message.hasPrefix("BUSYGROUP") {
                throw .reply(message)
            }
        }
    }

    /// Blocks up to `block` for new entries of these kinds and leases them to `consumer`.
    public func read(
        kinds: [String], consumer: String, count: Int, block: Duration, on redis: RedisConnection
    ) async throws(RedisError) -> [Delivery] {
        try await deliveries(from: redis.send(readCommand(kinds: kinds, consumer: consumer, count: count, block: block)), kinds: kinds, on: redis)
    }

    /// `read`, then the cancel list from `cancelsSinceMs`, in one round trip. Redis answers one
    /// connection's commands in order, so the list is read after the deliveries were taken:
    /// every cancel made before a step was handed out is in it, and the step can be recorded
    /// `canceled` without running.
    public func read(
        kinds: [String], consumer: String, count: Int, block: Duration, cancelsSinceMs: Int64, on redis: RedisConnection
    ) async throws(RedisError) -> (deliveries: [Delivery], cancels: (members: [String], latestMs: Int64)) {
        let replies = try await redis.pipeline([
            readCommand(kinds: kinds, consumer: consumer, count: count, block: block), CancelList(keys: keys).sinceCommand(ms: cancelsSinceMs),
        ])
        let deliveries = try await deliveries(from: replies[0], kinds: kinds, on: redis)
        return (deliveries, CancelList.parse(try replies[1].orThrow(), sinceMs: cancelsSinceMs))
    }

    private func readCommand(kinds: [String], consumer: String, count: Int, block: Duration) -> [String] {
        var command = [
            "XREADGROUP", "GROUP", QueueKeys.workerGroup, consumer,
            "COUNT", String(max(count, 1)), "BLOCK", String(max(block.milliseconds, 1)), "STREAMS",
        ]
        command += kinds.map { keys.stream($0) }
        command += kinds.map { _ in ">" }
        return command
    }

    private func deliveries(from reply: RedisValue, kinds: [String], on redis: RedisConnection) async throws(RedisError) -> [Delivery] {
        if case .error(let message) = reply {
            guard message.hasPrefix("NOGROUP") else { throw .reply(message) }
            // Redis lost its streams (restart without data, FLUSHALL): recreate and read again.
            try await prepare(kinds: kinds, on: redis)
            return []
        }
        return StreamReplies.streams(reply).map { Delivery(kind: keys.kind(ofStream: $0.stream) ?? $0.stream, id: $0.entry.id, fields: $0.entry.fields) }
    }

    /// Renews the lease on `ids` for `consumer`; returns the ids it still owns.
    /// An id missing from the answer was reclaimed: its result will be stale.
    public func renew(kind: String, consumer: String, ids: [String], on redis: RedisConnection) async throws(RedisError) -> Set<String> {
        guard !ids.isEmpty else { return [] }
        let reply = try await redis.command(
            ["EVAL", Scripts.renew, "1", keys.stream(kind), QueueKeys.workerGroup, consumer] + ids
        )
        // Anything but a list of ids is an error, never "you own nothing".
        guard let owned = reply.array else { throw .protocolViolation("lease renewal answered \(reply)") }
        return Set(owned.compactMap(\.string))
    }

    /// Acknowledges finished deliveries and publishes their result events, in one
    /// `MULTI` so an ack never goes out without its event. Call only after the
    /// attempt records are committed in Postgres. The events go out as one entry: each
    /// item's `event` is its fields in the batch form (`AttemptResult.eventFields`).
    ///
    /// `trimming` names the kinds whose streams are trimmed in the same transaction (nil: the
    /// kinds of `finished`). A trim costs Redis ~60 µs whatever it frees (the pending summary,
    /// the script), so a busy worker trims a few times a second, not after every batch.
    public func complete(
        _ finished: [(kind: String, id: String, event: [(String, String)])], trimming: Set<String>? = nil, on redis: RedisConnection
    ) async throws(RedisError) {
        guard !finished.isEmpty else { return }
        // One event for the whole batch: the items' fields one after another (see
        // AttemptResult.eventFields), one entry to store, read and acknowledge.
        let xadd = ResultEvents(keys: keys).appendCommand(finished.map(\.event))
        var commands: [[String]] = [["MULTI"], xadd]
        var idsByKind: [String: [String]] = [:]
        for item in finished { idsByKind[item.kind, default: []].append(item.id) }
        for (kind, ids) in idsByKind.sorted(by: { $0.key < $1.key }) {
            commands.append(["XACK", keys.stream(kind), QueueKeys.workerGroup] + ids)
        }
        for kind in (trimming ?? Set(idsByKind.keys)).sorted() {
            commands.append(Scripts.trimCommand(keys.stream(kind), group: QueueKeys.workerGroup))
        }
        commands.append(["EXEC"])
        let replies = try await redis.pipeline(commands)
        if case .error(let message)? = replies.last { throw .reply(message) }
    }

    /// Moves a delivery that is not a valid job to the kind's dead-letter stream
    /// with the reason, and acknowledges it, atomically.
    public func deadLetter(_ delivery: Delivery, reason: String, on redis: RedisConnection) async throws(RedisError) {
        var xadd = ["XADD", keys.deadLetters(delivery.kind), "MAXLEN", "~", "10000", "*", "reason", reason, "entry", delivery.id]
        for (name, value) in delivery.fields {
            xadd.append("field." + name)
            xadd.append(value)
        }
        let replies = try await redis.pipeline([
            ["MULTI"], xadd,
            ["XACK", keys.stream(delivery.kind), QueueKeys.workerGroup, delivery.id],
            Scripts.trimCommand(keys.stream(delivery.kind), group: QueueKeys.workerGroup),
            ["EXEC"],
        ])
        if case .error(let message)? = replies.last { throw .reply(message) }
    }

    /// Entries of the dead-letter stream of `kind`, newest last.
    public func deadLetters(kind: String, limit: Int, on redis: RedisConnection) async throws(RedisError) -> [EventEntry] {
        let reply = try await redis.command(["XRANGE", keys.deadLetters(kind), "-", "+", "COUNT", String(limit)])
        return StreamReplies.entries(reply)
    }

    // MARK: Reaping

    /// Deliveries of `kind` idle for at least `minIdle`, with their holders.
    /// Only those of `consumer` when given.
    public func expired(kind: String, minIdle: Duration, count: Int, consumer: String? = nil, on redis: RedisConnection) async throws(RedisError) -> [ExpiredDelivery] {
        var command = ["XPENDING", keys.stream(kind), QueueKeys.workerGroup, "IDLE", String(minIdle.milliseconds), "-", "+", String(count)]
        if let consumer { command.append(consumer) }
        let reply = try await redis.send(command)
        if case .error(let message) = reply {
            if message.hasPrefix("NOGROUP") { return [] }
            throw .reply(message)
        }
        return (reply.array ?? []).compactMap { row in
            guard let fields = row.array, fields.count >= 4,
                  let id = fields[0].string, let consumer = fields[1].string,
                  let idle = fields[2].integer, let count = fields[3].integer
            else { return nil }
            return ExpiredDelivery(kind: kind, id: id, consumer: consumer, idleMs: idle, deliveries: count)
        }
    }

    /// Takes over deliveries still idle for at least `minIdle` (re-checked atomically
    /// by Redis, so a holder that just renewed keeps its lease).
    public func claim(kind: String, ids: [String], minIdle: Duration, consumer: String, on redis: RedisConnection) async throws(RedisError) -> [Delivery] {
        guard !ids.isEmpty else { return [] }
        let reply = try await redis.command(
            ["XCLAIM", keys.stream(kind), QueueKeys.workerGroup, consumer, String(minIdle.milliseconds)] + ids
        )
        return StreamReplies.entries(reply).map { Delivery(kind: kind, id: $0.id, fields: $0.fields) }
    }

    /// Acknowledges deliveries without an event (the reaper's own results are applied
    /// directly by the dispatcher), and trims what the group is done with.
    public func acknowledge(kind: String, ids: [String], on redis: RedisConnection) async throws(RedisError) {
        guard !ids.isEmpty else { return }
        _ = try await redis.pipeline([
            ["XACK", keys.stream(kind), QueueKeys.workerGroup] + ids,
            Scripts.trimCommand(keys.stream(kind), group: QueueKeys.workerGroup),
        ])
    }

    /// Trims what the workers are done with from these kinds' streams (see `complete`).
    public func trim(kinds: Set<String>, on redis: RedisConnection) async throws(RedisError) {
        guard !kinds.isEmpty else { return }
        for reply in try await redis.pipeline(kinds.sorted().map { Scripts.trimCommand(keys.stream($0), group: QueueKeys.workerGroup) }) {
            _ = try reply.orThrow()
        }
    }

    // MARK: Inspection (reconciler, fleet view)

    /// Every attempt present in Redis for `kind`: waiting in its stream or leased (or finished
    /// and not trimmed yet: its outcome is in the ledger and its result event on the way).
    public func attemptsPresent(kind: String, on redis: RedisConnection) async throws(RedisError) -> Set<AttemptKey> {
        var present: Set<AttemptKey> = []
        var start = "-"
        while true {
            let reply = try await redis.command(["XRANGE", keys.stream(kind), start, "+", "COUNT", "1000"])
            let entries = StreamReplies.entries(reply)
            for entry in entries {
                if let job = try? Job(fields: entry.fields) {
                    present.insert(AttemptKey(step: job.key, attempt: job.attempt))
                }
            }
            guard entries.count == 1000, let last = entries.last else { break }
            start = "(" + last.id
        }
        return present
    }

    /// Entries of a kind's stream that are waiting or leased, and how many of them are leased.
    /// (The stream's own length also counts finished entries not trimmed yet.) O(entries waiting).
    public func depth(kind: String, on redis: RedisConnection) async throws(RedisError) -> (length: Int64, pending: Int64) {
        let reply = try await redis.command(["EVAL", Scripts.depth, "1", keys.stream(kind), QueueKeys.workerGroup])
        guard let counts = reply.array, counts.count == 2, let length = counts[0].integer, let pending = counts[1].integer else {
            throw .protocolViolation("the depth script answered \(reply)")
        }
        return (length, pending)
    }

    // MARK: Dead letters

    /// The queue kinds (`build`, `build@production`) that have a stream.
    public func kinds(on redis: RedisConnection) async throws(RedisError) -> [String] {
        try await scan(pattern: Self.globEscaped(keys.stream("")) + "*", on: redis).compactMap(keys.kind(ofStream:)).sorted()
    }

    /// The queue kinds (`build`, `build@production`) that have a dead-letter stream.
    public func deadLetterKinds(on redis: RedisConnection) async throws(RedisError) -> [String] {
        let prefix = keys.deadLetters("")
        return try await scan(pattern: Self.globEscaped(prefix) + "*", on: redis).map { String($0.dropFirst(prefix.count)) }.sorted()
    }

    // MARK: Removing

    /// Deletes every key of this namespace (streams, groups, delayed retries, logs, heartbeats):
    /// for namespaces made for one use, like a benchmark's. Stop its dispatchers and workers first.
    public func removeNamespace(on redis: RedisConnection) async throws(RedisError) {
        let found = try await scan(pattern: Self.globEscaped("{\(keys.namespace)}:") + "*", on: redis)
        for start in stride(from: 0, to: found.count, by: 1_000) {
            try await redis.command(["UNLINK"] + found[start..<min(found.count, start + 1_000)])
        }
    }

    /// Every key matching a glob pattern (SCAN, so Redis is never blocked on a large keyspace).
    private func scan(pattern: String, on redis: RedisConnection) async throws(RedisError) -> [String] {
        var cursor = "0"
        var found: [String] = []
        repeat {
            let reply = try await redis.command(["SCAN", cursor, "MATCH", pattern, "COUNT", "1000"])
            guard let parts = reply.array, parts.count == 2, let next = parts[0].string else {
                throw .protocolViolation("SCAN answered \(reply)")
            }
            found += (parts[1].array ?? []).compactMap(\.string)
            cursor = next
        } while cursor != "0"
        return found
    }

    /// `text` with the glob characters of a SCAN pattern escaped.
    private static func globEscaped(_ text: String) -> String {
        var pattern = ""
        for character in text {
            if "*?[]\\".contains(character) { pattern.append("\\") }
            pattern.append(character)
        }
        return pattern
    }
}
