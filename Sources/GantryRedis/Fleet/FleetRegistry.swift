import Foundation
import GantryCore

/// The fleet hash (`QueueKeys.workers`): each live worker's `WorkerHeartbeat` under its
/// name. Workers announce themselves and take their entry away when they stop; a killed
/// worker's entry stays and goes stale after its lease. The only code that reads or writes
/// the hash.
public struct FleetRegistry: Sendable {
    public let keys: QueueKeys

    public init(keys: QueueKeys) {
        self.keys = keys
    }

    /// Writes a worker's heartbeat.
    public func announce(_ worker: String, _ heartbeat: WorkerHeartbeat, on redis: RedisConnection) async throws(RedisError) {
        let text: String
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        do { text = String(decoding: try encoder.encode(heartbeat), as: UTF8.self) } catch {
            throw .protocolViolation("cannot encode the heartbeat of \(worker): \(error)")
        }
        try await redis.command(["HSET", keys.workers, worker, text])
    }

    /// Removes a worker's entry (it stopped).
    public func remove(_ worker: String, on redis: RedisConnection) async throws(RedisError) {
        try await redis.command(["HDEL", keys.workers, worker])
    }

    /// Every entry, live or stale, by worker name; an entry that is not a heartbeat is left out.
    public func heartbeats(on redis: RedisConnection) async throws(RedisError) -> [String: WorkerHeartbeat] {
        let reply = try await redis.command(["HGETALL", keys.workers])
        let decoder = JSONDecoder()
        var out: [String: WorkerHeartbeat] = [:]
        for (worker, text) in reply.pairs ?? [] {
            if let heartbeat = try? decoder.decode(WorkerHeartbeat.self, from: Data(text.utf8)) { out[worker] = heartbeat }
        }
        return out
    }

    /// The heartbeats of the workers seen within their lease.
    public func live(nowMs: Int64, on redis: RedisConnection) async throws(RedisError) -> [String: WorkerHeartbeat] {
        try await heartbeats(on: redis).filter { $0.value.isLive(nowMs: nowMs) }
    }

    /// How many entries the hash holds, live or not.
    public func count(on redis: RedisConnection) async throws(RedisError) -> Int {
        Int(try await redis.command(["HLEN", keys.workers]).integer ?? 0)
    }

    /// The workers whose heartbeat says they take `kind` and that were seen within their lease.
    public func liveWorkers(kind: String, nowMs: Int64, on redis: RedisConnection) async throws(RedisError) -> [String] {
        try await live(nowMs: nowMs, on: redis).filter { $0.value.kinds.contains(kind) }.keys.sorted()
    }

    /// Each worker's lease, stale entries included (the reaper honours a frozen worker's lease).
    public func leases(on redis: RedisConnection) async throws(RedisError) -> [String: Duration] {
        try await heartbeats(on: redis).filter { $0.value.leaseMs > 0 }.mapValues { .milliseconds($0.leaseMs) }
    }

    /// The live fleet as its heartbeats tell it: who takes which queues, and which attempts
    /// each runs now (a worker announces new attempts within 200 ms).
    public func snapshot(nowMs: Int64, on redis: RedisConnection) async throws(RedisError) -> FleetSnapshot {
        var members: [FleetSnapshot.Member] = []
        var running: [String: FleetSnapshot.Runner] = [:]
        for (worker, heartbeat) in try await live(nowMs: nowMs, on: redis) {
            members.append(.init(name: worker, kinds: heartbeat.kinds, draining: heartbeat.draining))
            for entry in heartbeat.running {
                running[entry.attempt] = .init(worker: worker, sinceMs: entry.sinceMs)
            }
        }
        return FleetSnapshot(workers: members.sorted { $0.name < $1.name }, running: running)
    }

    /// The newest job format each kind's live workers all read (see `WorkQueue.jobFormats`).
    func jobFormats(nowMs: Int64, on redis: RedisConnection) async throws(RedisError) -> [String: JobFormat] {
        var formats: [String: JobFormat] = [:]
        for heartbeat in try await live(nowMs: nowMs, on: redis).values {
            // A worker reads its newest format and every one before it, so a worker of a later
            // release (a format this one does not know) reads the newest one known here.
            let reads = JobFormat.allCases.last { $0.rawValue <= heartbeat.jobs } ?? .fields
            for kind in heartbeat.kinds {
                formats[kind] = min(formats[kind] ?? reads, reads)
            }
        }
        return formats
    }
}
