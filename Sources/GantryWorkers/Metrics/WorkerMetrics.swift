import CoreMetrics
import GantryCore
import Synchronization

/// What a worker counts and times, through swift-metrics (the process chooses the backend:
/// `gantry worker --metrics-listen` serves them for Prometheus). Names and units follow
/// Prometheus's conventions (`_total` counters, `_seconds` histograms); `queue` is `kind` or
/// `kind@pool`. Handles are made once per label set and kept: a step costs a lookup and an add.
final class WorkerMetrics: Sendable {
    private let started = Handles<Counter> { Counter(label: "gantry_steps_started_total", dimensions: [("queue", $0)]) }
    private let finished = Handles<Counter> { key in
        let (queue, status) = Handles<Counter>.split(key)
        return Counter(label: "gantry_steps_finished_total", dimensions: [("queue", queue), ("status", status)])
    }
    private let durations = Handles<Timer> { Timer(label: "gantry_attempt_duration_seconds", dimensions: [("queue", $0)], preferredDisplayUnit: .seconds) }
    private let pickups = Handles<Timer> { Timer(label: "gantry_pickup_latency_seconds", dimensions: [("queue", $0)], preferredDisplayUnit: .seconds) }
    private let leasesRenewed = Counter(label: "gantry_leases_renewed_total")
    private let leasesLost = Counter(label: "gantry_leases_lost_total")
    private let inFlight = Gauge(label: "gantry_worker_steps_in_flight")
    private let concurrency = Gauge(label: "gantry_worker_concurrency")
    private let redisErrors = Counter(label: "gantry_redis_errors_total", dimensions: [("process", "worker")])
    private let postgresErrors = Counter(label: "gantry_postgres_errors_total", dimensions: [("process", "worker")])

    func leases(renewed: Int, lost: Int) {
        leasesRenewed.increment(by: renewed)
        leasesLost.increment(by: lost)
    }

    func load(inFlight running: Int, concurrency limit: Int) {
        inFlight.record(running)
        concurrency.record(limit)
    }

    func redisError() { redisErrors.increment() }
    func postgresError() { postgresErrors.increment() }

    /// An attempt taken from `queue`, enqueued at `enqueuedAtUs`.
    func started(queue: String, enqueuedAtUs: Int64, nowUs: Int64) {
        started.handle(queue).increment()
        if enqueuedAtUs > 0, nowUs >= enqueuedAtUs { pickups.handle(queue).recordNanoseconds((nowUs - enqueuedAtUs) * 1_000) }
    }

    /// An outcome recorded in the ledger.
    func finished(queue: String, _ result: AttemptResult) {
        finished.handle(queue + "\u{0}" + result.status.rawValue).increment()
        durations.handle(queue).recordNanoseconds(max(0, result.finishedAtUs - result.startedAtUs) * 1_000)
    }
}

/// Metric handles by label value, made on first use.
private final class Handles<Handle: Sendable>: Sendable {
    private let make: @Sendable (String) -> Handle
    private let made = Mutex<[String: Handle]>([:])

    init(_ make: @escaping @Sendable (String) -> Handle) {
        self.make = make
    }

    func handle(_ key: String) -> Handle {
        if let handle = made.withLock({ $0[key] }) { return handle }
        let handle = make(key)
        return made.withLock { made in
            if let existing = made[key] { return existing }
            made[key] = handle
            return handle
        }
    }

    /// The two label values of a key made as `first + "\0" + second`.
    static func split(_ key: String) -> (String, String) {
        let parts = key.split(separator: "\u{0}", maxSplits: 1, omittingEmptySubsequences: false)
        return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
    }
}
