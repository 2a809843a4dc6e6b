import Foundation
import GantryCore

/// What operators ask of the fleet: queues paused (`QueueKeys.paused`) and workers asked to
/// drain (`QueueKeys.drains`). The API writes both; workers read them every half second. The
/// only code that reads or writes the two hashes.
public struct FleetControl: Sendable {
    public let keys: QueueKeys

    public init(keys: QueueKeys) {
        self.keys = keys
    }

    /// Who asked, when and why: the value of a paused queue or a drained worker.
    public struct Request: Codable, Sendable, Equatable {
        public var by: String
        public var atMs: Int64
        public var reason: String?

        public init(by: String, atMs: Int64, reason: String?) {
            self.by = by
            self.atMs = atMs
            self.reason = reason
        }

        enum CodingKeys: String, CodingKey {
            case by, reason
            case atMs = "at_ms"
        }
    }

    // MARK: Paused queues

    /// Pauses a queue; true when it was running.
    @discardableResult
    public func pause(_ queue: String, _ request: Request, on redis: RedisConnection) async throws(RedisError) -> Bool {
        try await redis.command(["HSETNX", keys.paused, queue, try Self.text(request)]).integer == 1
    }

    /// Resumes a queue; true when it was paused.
    @discardableResult
    public func resume(_ queue: String, on redis: RedisConnection) async throws(RedisError) -> Bool {
        try await redis.command(["HDEL", keys.paused, queue]).integer == 1
    }

    /// The paused queues, with who paused them.
    public func paused(on redis: RedisConnection) async throws(RedisError) -> [String: Request] {
        try Self.requests(try await redis.command(["HGETALL", keys.paused]))
    }

    // MARK: Drains

    /// Asks a worker to drain; true when it had not been asked yet.
    @discardableResult
    public func requestDrain(_ worker: String, _ request: Request, on redis: RedisConnection) async throws(RedisError) -> Bool {
        try await redis.command(["HSETNX", keys.drains, worker, try Self.text(request)]).integer == 1
    }

    /// The workers asked to drain.
    public func drainRequests(on redis: RedisConnection) async throws(RedisError) -> [String: Request] {
        try Self.requests(try await redis.command(["HGETALL", keys.drains]))
    }

    /// What a worker reads every half second: the paused queues among those it takes, and
    /// whether it was asked to drain, in one round trip.
    public func instructions(
        worker: String, queues: [String], on redis: RedisConnection
    ) async throws(RedisError) -> (paused: Set<String>, drain: Bool) {
        let replies = try await redis.pipeline([
            ["HMGET", keys.paused] + queues,
            ["HEXISTS", keys.drains, worker],
        ])
        guard replies.count == 2 else { throw .protocolViolation("expected 2 replies, got \(replies.count)") }
        let flags = try replies[0].orThrow().array ?? []
        var paused: Set<String> = []
        for (queue, flag) in zip(queues, flags) where !flag.isNull { paused.insert(queue) }
        return (paused, try replies[1].orThrow().integer == 1)
    }

    /// Takes a worker's drain request away (it stopped).
    public func drained(_ worker: String, on redis: RedisConnection) async throws(RedisError) {
        try await redis.command(["HDEL", keys.drains, worker])
    }

    private static func text(_ request: Request) throws(RedisError) -> String {
        do { return String(decoding: try JSONEncoder().encode(request), as: UTF8.self) } catch {
            throw .protocolViolation("cannot encode the request: \(error)")
        }
    }

    private static func requests(_ reply: RedisValue) throws(RedisError) -> [String: Request] {
        var requests: [String: Request] = [:]
        for (name, text) in reply.pairs ?? [] {
            // A value this release cannot read still counts, with what can be said of it.
            requests[name] = (try? JSONDecoder().decode(Request.self, from: Data(text.utf8))) ?? Request(by: "?", atMs: 0, reason: nil)
        }
        return requests
    }
}
