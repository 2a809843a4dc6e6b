import Foundation
import GantryAPI
import GantryCore
import GantryRedis
import GantryRuntime

/// `GET /v1/fleet` (every worker, with what it runs and what is wrong with it) and
/// `POST /v1/workers/{name}/drain` (a remote graceful drain), for operators.
struct FleetRoutes: Sendable {
    let redis: RedisConnection
    let keys: QueueKeys
    let audit: ActionAudit

    func fleet(_ input: Operations.GetFleet.Input) async throws -> Operations.GetFleet.Output {
        let grant = try APICaller.grant()
        try await audit.authorize(grant, .observe, environment: nil, runID: nil, log: "fleet")
        let now = WallClock.nowMs()
        let heartbeats = try await FleetRegistry(keys: keys).heartbeats(on: redis)
        let drains = try await FleetControl(keys: keys).drainRequests(on: redis)
        let workers = heartbeats.keys.sorted().compactMap { name in
            heartbeats[name].map { Self.worker(name, $0, drainRequested: drains[name] != nil, nowMs: now) }
        }
        return .ok(.init(body: .json(.init(workers: workers, checkedAt: Self.date(now)))))
    }

    func drain(_ input: Operations.DrainWorker.Input) async throws -> Operations.DrainWorker.Output {
        let grant = try APICaller.grant()
        let name = input.path.name
        try await audit.authorize(grant, .operate, environment: nil, runID: nil, log: "drain")
        var reason: String?
        if case .json(let body)? = input.body { reason = body.reason }
        let now = WallClock.nowMs()
        let refuse = { (error: APIError) async throws -> Never in
            try? await audit.record(actor: grant.name, "drain", runID: nil, environment: nil, accepted: false, reason: "worker \(name.prefix(64)): \(error.message)")
            throw error
        }
        guard let heartbeat = try await FleetRegistry(keys: keys).heartbeats(on: redis)[name], heartbeat.isLive(nowMs: now) else {
            try await refuse(.notFound("no live worker \(name.prefix(64)) (gantry fleet lists them)"))
        }
        let control = FleetControl(keys: keys)
        guard !heartbeat.draining,
              try await control.requestDrain(name, .init(by: grant.name, atMs: now, reason: reason), on: redis)
        else {
            try await refuse(.conflict("worker \(name.prefix(64)) is already draining"))
        }
        try await audit.record(actor: grant.name, "drain", runID: nil, environment: nil, accepted: true,
                               reason: "worker \(name)" + (reason.map { ": \($0)" } ?? ""))
        return .accepted(.init(body: .json(Self.worker(name, heartbeat, drainRequested: true, nowMs: now))))
    }

    static func worker(_ name: String, _ heartbeat: WorkerHeartbeat, drainRequested: Bool, nowMs: Int64) -> Components.Schemas.Worker {
        let state: Components.Schemas.Worker.StatePayload = !heartbeat.isLive(nowMs: nowMs) ? .stopped : heartbeat.draining ? .draining : .live
        return .init(
            name: name, state: state, queues: heartbeat.kinds, paused: heartbeat.paused, concurrency: heartbeat.concurrency, inFlight: heartbeat.inFlight,
            leaseMs: Int(heartbeat.leaseMs), version: heartbeat.version.isEmpty ? nil : heartbeat.version,
            host: heartbeat.host.isEmpty ? nil : heartbeat.host, pid: heartbeat.pid == 0 ? nil : Int(heartbeat.pid),
            startedAt: heartbeat.startedMs > 0 ? date(heartbeat.startedMs) : nil, lastHeartbeat: date(heartbeat.seenMs),
            heartbeatAgeMs: Int(max(0, nowMs - heartbeat.seenMs)), drainRequested: drainRequested,
            problem: QueueHealth.problem(worker: name, seenMs: heartbeat.seenMs, leaseMs: heartbeat.leaseMs, nowMs: nowMs),
            running: heartbeat.running.map { .init(attempt: $0.attempt, since: date($0.sinceMs)) }
        )
    }

    static func date(_ ms: Int64) -> Date { Date(timeIntervalSince1970: Double(ms) / 1_000) }
}
