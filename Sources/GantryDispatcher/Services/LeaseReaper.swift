import GantryCore
import GantryPostgres
import GantryRedis
import GantryRuntime
import Logging
import ServiceLifecycle

/// Takes over deliveries idle past their holder's lease, every `--reap-interval`: the
/// attempt is recorded `lost` unless the ledger already has an outcome (the holder committed
/// and died before acknowledging), and the outcome is applied, so that the step is retried.
struct LeaseReaper: Service {
    let state: DispatcherState
    let metrics = DispatcherMetrics()

    private var consumer: String { "reaper-\(state.configuration.id)" }

    func run() async throws {
        let redis = state.redis("reap")
        let db = state.postgres("reap")
        await state.everyPass("reaper", interval: state.configuration.reapInterval) {
            try await reap(redis: redis, db: db)
        }
    }

    /// One pass over every kind's pending entries.
    func reap(redis: RedisConnection, db: PostgresConnection) async throws {
        let configuration = state.configuration
        let queue = state.queue
        let leases = try await FleetRegistry(keys: configuration.keys).leases(on: redis)
        let shortest = leases.values.min().map { min($0, configuration.defaultLease) } ?? configuration.defaultLease
        for kind in try await queue.kinds(on: redis) {
            let expired = try await queue.expired(kind: kind, minIdle: shortest, count: 1_000, on: redis)
            // A reaper that died mid-pass left entries under its name: take them over like any other.
            let due = expired.filter { $0.idleMs >= (leases[$0.consumer] ?? configuration.defaultLease).milliseconds }
            guard !due.isEmpty else { continue }
            var claimed: [Delivery] = []
            for (holder, group) in Dictionary(grouping: due, by: \.consumer) {
                let lease = leases[holder] ?? configuration.defaultLease
                claimed += try await queue.claim(kind: kind, ids: group.map(\.id), minIdle: lease, consumer: consumer, on: redis)
            }
            guard !claimed.isEmpty else { continue }
            metrics.leasesReclaimed(queue: kind, count: claimed.count)
            let holders = Dictionary(due.map { ($0.id, $0.consumer) }, uniquingKeysWith: { a, _ in a })
            try await settle(claimed, kind: kind, holders: holders, redis: redis, db: db)
        }
    }

    private func settle(_ claimed: [Delivery], kind: String, holders: [String: String], redis: RedisConnection, db: PostgresConnection) async throws {
        let (queue, ledger) = (state.queue, state.ledger)
        var jobs: [(Delivery, Job)] = []
        for delivery in claimed {
            do {
                jobs.append((delivery, try Job(fields: delivery.fields)))
            } catch {
                try await queue.deadLetter(delivery, reason: "\(error)", on: redis)
            }
        }
        let keys = jobs.map { AttemptKey(step: $0.1.key, attempt: $0.1.attempt) }
        let recorded = try await ledger.current(keys, on: db)
        let nowUs = WallClock.nowUs()
        var lost: [AttemptResult] = []
        var honoured: [AttemptResult] = []
        for (delivery, job) in jobs {
            let key = AttemptKey(step: job.key, attempt: job.attempt)
            if let result = recorded[key] {
                honoured.append(result)
            } else {
                let holder = holders[delivery.id] ?? "unknown"
                lost.append(AttemptResult(
                    key: key, kind: job.baseKind, status: .lost, worker: holder,
                    error: "worker \(holder) went silent for longer than its lease",
                    startedAtUs: job.enqueuedAtUs, finishedAtUs: nowUs, deliveryID: delivery.id
                ))
            }
        }
        let outcomes = try await ledger.record(lost, on: db)
        // A holder that committed between our read and our write wins: use its outcome.
        let raced = lost.filter { if case .stale? = outcomes[$0.key] { true } else { false } }.map(\.key)
        let winners = raced.isEmpty ? [:] : try await ledger.current(raced, on: db)
        let results = honoured + lost.map { winners[$0.key] ?? $0 }
        if !lost.isEmpty {
            state.logger.warning("reclaimed expired leases", metadata: [
                "gantry.kind": "\(kind)", "gantry.count": "\(lost.count)",
                "gantry.workers": "\(Set(lost.map(\.worker)).sorted().joined(separator: ","))",
            ])
        }
        await state.apply(results, writer: redis, db: db)
        try await queue.acknowledge(kind: kind, ids: claimed.map(\.id), on: redis)
    }
}
