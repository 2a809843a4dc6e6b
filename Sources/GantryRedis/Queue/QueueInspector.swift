import GantryCore

/// Reads what operators ask of each queue: how much waits, is leased, is delayed or dead, how
/// old the oldest waiting entry is, how many leases went unrenewed, and how many entries the
/// workers have taken so far (a counter: two readings make a rate). A few commands per queue,
/// none of them blocking Redis on a long stream.
public struct QueueInspector: Sendable {
    public let keys: QueueKeys

    public init(keys: QueueKeys) {
        self.keys = keys
    }

    /// One queue's numbers from Redis (the fleet's part is added by `QueueFigures`' caller).
    public struct Reading: Sendable, Equatable {
        public var queue: String
        public var waiting: Int64
        public var leased: Int64
        public var dead: Int64
        public var oldestWaitingMs: Int64?
        public var unrenewed: Int
        /// Entries delivered to the workers' group since the stream was made (Redis counts them).
        public var taken: Int64?
    }

    /// Every queue that has a stream or dead letters, by name.
    public func read(on redis: RedisConnection) async throws(RedisError) -> [Reading] {
        let queue = WorkQueue(keys: keys)
        let names = Set(try await queue.kinds(on: redis)).union(try await queue.deadLetterKinds(on: redis)).sorted()
        var readings: [Reading] = []
        for name in names {
            readings.append(try await read(name, on: redis))
        }
        return readings
    }

    /// One queue's numbers.
    public func read(_ name: String, on redis: RedisConnection) async throws(RedisError) -> Reading {
        let stream = keys.stream(name)
        let replies = try await redis.pipeline([
            ["XINFO", "GROUPS", stream],
            ["XLEN", keys.deadLetters(name)],
            ["XPENDING", stream, QueueKeys.workerGroup, "IDLE", String(QueueHealth.unrenewed.milliseconds), "-", "+", "1000"],
        ])
        guard replies.count == 3 else { throw .protocolViolation("expected 3 replies, got \(replies.count)") }
        var reading = Reading(queue: name, waiting: 0, leased: 0, dead: try replies[1].orThrow().integer ?? 0, oldestWaitingMs: nil, unrenewed: 0, taken: nil)
        // A stream that does not exist (only dead letters) has no group: nothing waits.
        guard case .array(let groups) = replies[0] else { return reading }
        for group in groups {
            let fields = Self.fields(group)
            guard fields["name"]?.string == QueueKeys.workerGroup else { continue }
            reading.leased = fields["pending"]?.integer ?? 0
            reading.taken = Self.taken(fields)
            let lastDelivered = fields["last-delivered-id"]?.string ?? "0-0"
            // The oldest entry after the last one delivered is the oldest waiting; its id is its time.
            let next = try await redis.command(["XRANGE", stream, "(" + lastDelivered, "+", "COUNT", "1"])
            if let id = StreamReplies.entries(next).first?.id {
                reading.oldestWaitingMs = Int64(id.split(separator: "-").first ?? "")
                // Redis 7 counts what the group has not read (`lag`); nil after some deletions, then count.
                if let lag = fields["lag"]?.integer {
                    reading.waiting = lag
                } else {
                    reading.waiting = try await redis.command(["XLEN", stream]).integer.map { max(0, $0 - reading.leased) } ?? 0
                }
            }
        }
        if !groups.contains(where: { Self.fields($0)["name"]?.string == QueueKeys.workerGroup }) {
            // No worker has read the queue yet (its group is made by the first): all of it waits.
            reading.waiting = try await redis.command(["XLEN", stream]).integer ?? 0
            let first = try await redis.command(["XRANGE", stream, "-", "+", "COUNT", "1"])
            reading.oldestWaitingMs = StreamReplies.entries(first).first.flatMap { Int64($0.id.split(separator: "-").first ?? "") }
        }
        if case .array(let idle) = replies[2] { reading.unrenewed = idle.count }
        return reading
    }

    /// Retries waiting in the delayed set, by queue (at most `limit` looked at).
    public func delayed(limit: Int = 100_000, on redis: RedisConnection) async throws(RedisError) -> [String: Int] {
        var counts: [String: Int] = [:]
        var offset = 0
        while offset < limit {
            let page = try await redis.command(["ZRANGE", keys.delayed, String(offset), String(offset + 999)]).array ?? []
            for member in page {
                guard case .object(let object)? = member.string.flatMap(JSONValue.parse), let stream = object["s"]?.stringValue,
                      let queue = keys.kind(ofStream: stream)
                else { continue }
                counts[queue, default: 0] += 1
            }
            if page.count < 1_000 { break }
            offset += 1_000
        }
        return counts
    }

    /// The group's count of entries read; Redis leaves it unset until the first read of a group
    /// made on an empty stream (nothing delivered yet: 0), and after some deletions (unknown).
    private static func taken(_ fields: [String: RedisValue]) -> Int64? {
        if let read = fields["entries-read"]?.integer { return read }
        return fields["last-delivered-id"]?.string == "0-0" ? 0 : nil
    }

    /// A reply of alternating names and values (XINFO's maps), by name.
    private static func fields(_ value: RedisValue) -> [String: RedisValue] {
        var fields: [String: RedisValue] = [:]
        let items = value.array ?? []
        var index = 0
        while index + 1 < items.count {
            if let name = items[index].string { fields[name] = items[index + 1] }
            index += 2
        }
        return fields
    }
}
