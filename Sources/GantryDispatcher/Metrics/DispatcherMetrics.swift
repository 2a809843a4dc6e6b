import CoreMetrics
import Synchronization

/// What a dispatcher counts, and the queues' figures it samples, through swift-metrics (the
/// process chooses the backend: `gantry dispatcher --listen` serves them at `/metrics`).
/// Names and units follow Prometheus's conventions; `queue` is `kind` or `kind@pool`.
final class DispatcherMetrics: Sendable {
    private let handles = Mutex<[String: Counter]>([:])
    private let gauges = Mutex<[String: Gauge]>([:])
    private let redisErrors = Counter(label: "gantry_redis_errors_total", dimensions: [("process", "dispatcher")])
    private let postgresErrors = Counter(label: "gantry_postgres_errors_total", dimensions: [("process", "dispatcher")])

    func redisError() { redisErrors.increment() }
    func postgresError() { postgresErrors.increment() }

    func runFinished(status: String) { counter("gantry_runs_finished_total", [("status", status)]).increment() }
    func enqueued(queue: String, count: Int = 1) { counter("gantry_steps_enqueued_total", [("queue", queue)]).increment(by: count) }
    func retryScheduled(queue: String) { counter("gantry_retries_scheduled_total", [("queue", queue)]).increment() }
    func stepFailedForGood(kind: String) { counter("gantry_steps_failed_for_good_total", [("kind", kind)]).increment() }
    func leasesReclaimed(queue: String, count: Int) { counter("gantry_leases_reclaimed_total", [("queue", queue)]).increment(by: count) }

    /// A queue's figures as of now (the API's sampler, every few seconds).
    func queue(
        _ queue: String, waiting: Int64, leased: Int64, delayed: Int, dead: Int64, oldestWaitingSeconds: Double, liveWorkers: Int,
        paused: Bool
    ) {
        gauge("gantry_queue_waiting_steps", queue).record(waiting)
        gauge("gantry_queue_leased_steps", queue).record(leased)
        gauge("gantry_queue_delayed_steps", queue).record(delayed)
        gauge("gantry_queue_dead_letters", queue).record(dead)
        gauge("gantry_queue_oldest_waiting_seconds", queue).record(oldestWaitingSeconds)
        gauge("gantry_queue_live_workers", queue).record(liveWorkers)
        gauge("gantry_queue_paused", queue).record(paused ? 1 : 0)
    }

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        let key = label + dimensions.map { "\u{0}" + $0.1 }.joined()
        return handles.withLock { handles in
            if let handle = handles[key] { return handle }
            let handle = Counter(label: label, dimensions: dimensions)
            handles[key] = handle
            return handle
        }
    }

    private func gauge(_ label: String, _ queue: String) -> Gauge {
        let key = label + "\u{0}" + queue
        return gauges.withLock { gauges in
            if let gauge = gauges[key] { return gauge }
            let gauge = Gauge(label: label, dimensions: [("queue", queue)])
            gauges[key] = gauge
            return gauge
        }
    }
}
