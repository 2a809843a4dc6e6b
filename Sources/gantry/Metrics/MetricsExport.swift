import CoreMetrics
import Prometheus
import Synchronization

/// The process's metrics, for Prometheus: swift-metrics is bootstrapped once with a Prometheus
/// factory over one registry, and `exposition()` writes the registry in the text format with a
/// `# HELP` line for each of Gantry's metrics (`MetricHelp`), as `promtool check metrics` wants.
enum MetricsExport {
    static let registry = PrometheusCollectorRegistry()
    private static let bootstrapped = Mutex(false)

    /// Makes Prometheus the metrics backend; later calls do nothing.
    static func bootstrap() {
        let first = bootstrapped.withLock { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = [
            // A step runs from milliseconds (noop) to half an hour (a build, a metrics watch).
            "gantry_attempt_duration_seconds": [
                .milliseconds(1), .milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(500), .seconds(1),
                .seconds(5), .seconds(15), .seconds(60), .seconds(300), .seconds(1_800),
            ],
            // Enqueue to start: well under a millisecond when workers keep up, minutes when they do not.
            "gantry_pickup_latency_seconds": [
                .microseconds(200), .microseconds(500), .milliseconds(1), .milliseconds(5), .milliseconds(25), .milliseconds(100),
                .milliseconds(500), .milliseconds(2_500), .seconds(10), .seconds(60),
            ],
        ]
        MetricsSystem.bootstrap(factory)
    }

    /// The registry in Prometheus's text format, each metric with its help.
    static func exposition() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 << 10)
        registry.emit(into: &buffer)
        var out = ""
        out.reserveCapacity(buffer.count + 4_096)
        for line in String(decoding: buffer, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# TYPE "), let name = line.dropFirst(7).split(separator: " ").first, let help = MetricHelp.text[String(name)] {
                out += "# HELP \(name) \(help)\n"
            }
            out += line
            out += "\n"
        }
        while out.hasSuffix("\n\n") { out.removeLast() }
        return Array(out.utf8)
    }
}

/// What each of Gantry's metrics means (the `# HELP` lines; docs/operations.md lists them too).
enum MetricHelp {
    static let text: [String: String] = [
        "gantry_steps_started_total": "Attempts a worker took from a queue and started.",
        "gantry_steps_finished_total": "Attempt outcomes a worker recorded in the ledger, by status.",
        "gantry_attempt_duration_seconds": "How long attempts ran, from start to recorded outcome.",
        "gantry_pickup_latency_seconds": "From enqueue to a worker starting the attempt.",
        "gantry_leases_renewed_total": "Lease renewals a worker made for the deliveries it holds.",
        "gantry_leases_lost_total": "Deliveries whose lease a worker found taken (their outcome is recorded stale).",
        "gantry_worker_steps_in_flight": "Attempts a worker runs now.",
        "gantry_worker_concurrency": "How many attempts a worker runs at most.",
        "gantry_redis_errors_total": "Redis calls that failed (each is retried), by process.",
        "gantry_postgres_errors_total": "Postgres calls that failed (each is retried), by process.",
        "gantry_runs_finished_total": "Runs a dispatcher saw finish, by status.",
        "gantry_steps_enqueued_total": "Attempts a dispatcher put in a queue.",
        "gantry_retries_scheduled_total": "Attempts a dispatcher scheduled to retry after their backoff.",
        "gantry_steps_failed_for_good_total": "Steps that failed with no attempt left, by kind.",
        "gantry_leases_reclaimed_total": "Expired leases a dispatcher took back from workers that went away.",
        "gantry_queue_waiting_steps": "Steps no worker has taken yet, per queue.",
        "gantry_queue_leased_steps": "Steps a worker holds, per queue.",
        "gantry_queue_delayed_steps": "Retries waiting out their backoff, per queue.",
        "gantry_queue_dead_letters": "Deliveries that were not valid jobs, per queue.",
        "gantry_queue_oldest_waiting_seconds": "Age of the oldest step no worker has taken, per queue (0 when none waits).",
        "gantry_queue_live_workers": "Live workers that take the queue.",
        "gantry_queue_paused": "1 when an operator paused the queue.",
    ]
}
