import Foundation
import GantryCore
import GantryDispatcher
import GantryHTTP
import GantryPostgres
import Histogram
import Synchronization

/// `gantry bench --pipeline`: pipeline runs through the API. A 20-step no-op DAG
/// (fan-out 8, depth 5) is submitted one run at a time to measure
/// submit-to-succeeded, then `--runs` at once while readers measure
/// `GET /v1/runs/{id}` under that load.
struct PipelineBench: Sendable {
    let base: String
    let token: String
    let sequentialRuns: Int
    let concurrentRuns: Int
    /// GET requests per second, in total, while the runs execute.
    let readRate: Int
    /// Where the watcher counts unfinished runs (the bench's own connection).
    let db: PostgresConnection
    let namespace: String
    let say: @Sendable (String) -> Void

    /// The benchmark's DAG: 1 → 8 → 8 → 2 → 1. No environment, so no concurrency group holds runs back.
    static let dag: String = {
        var lines = ["pipeline: bench-dag", "steps:", "  - { id: s0, kind: noop }"]
        for i in 1...8 { lines.append("  - { id: a\(i), kind: noop, needs: [s0] }") }
        for i in 1...8 { lines.append("  - { id: b\(i), kind: noop, needs: [a\(i)] }") }
        lines.append("  - { id: c1, kind: noop, needs: [b1, b2, b3, b4] }")
        lines.append("  - { id: c2, kind: noop, needs: [b5, b6, b7, b8] }")
        lines.append("  - { id: d, kind: noop, needs: [c1, c2] }")
        return lines.joined(separator: "\n") + "\n"
    }()

    struct Report {
        var submitToSucceeded = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        var concurrentSeconds = 0.0
        var concurrentSucceeded = 0
        var errors = 0
        var getRun = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        /// `GET /healthz` under the same load: no token, no database, no run — what any request
        /// to this server costs while the machine is that busy. The floor under `getRun`.
        var getHealth = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        var readRate = 0

        var json: String {
            func ms(_ histogram: Histogram<UInt64>, _ percentile: Double) -> JSONValue {
                .number((Double(histogram.valueAtPercentile(percentile)) / 10).rounded() / 100)
            }
            return JSONValue.object([
                "submit_to_succeeded_p50_ms": ms(submitToSucceeded, 50),
                "submit_to_succeeded_p99_ms": ms(submitToSucceeded, 99),
                "concurrent_runs_succeeded": .number(Double(concurrentSucceeded)),
                "concurrent_seconds": .number((concurrentSeconds * 100).rounded() / 100),
                "errors": .number(Double(errors)),
                "get_run_p50_ms": ms(getRun, 50),
                "get_run_p99_ms": ms(getRun, 99),
                "get_run_requests": .number(Double(getRun.totalCount)),
                "get_run_rate_per_s": .number(Double(readRate)),
                "get_healthz_p50_ms": ms(getHealth, 50),
                "get_healthz_p99_ms": ms(getHealth, 99),
                "get_healthz_requests": .number(Double(getHealth.totalCount)),
            ]).jsonText
        }

        var text: String {
            func ms(_ histogram: Histogram<UInt64>, _ percentile: Double) -> String {
                String(format: "%.2f", Double(histogram.valueAtPercentile(percentile)) / 1_000)
            }
            return """
                submit → succeeded   p50 \(ms(submitToSucceeded, 50)) ms, p99 \(ms(submitToSucceeded, 99)) ms (20-step DAG, one run at a time, \(submitToSucceeded.totalCount) runs)
                concurrent runs      \(concurrentSucceeded) succeeded in \(String(format: "%.1f", concurrentSeconds)) s
                errors               \(errors)
                GET /v1/runs/{id}    p50 \(ms(getRun, 50)) ms, p99 \(ms(getRun, 99)) ms under that load (\(getRun.totalCount) requests at \(readRate)/s)
                GET /healthz         p50 \(ms(getHealth, 50)) ms, p99 \(ms(getHealth, 99)) ms alongside (\(getHealth.totalCount) requests at \(PipelineBench.floorRate)/s; no database: the floor of any request under that load)
                """
        }
    }

    /// Requests per second of the floor reader (`GET /healthz`), besides `readRate`.
    static let floorRate = 25

    func run() async throws -> Report {
        var report = Report()
        report.readRate = readRate
        let client = HTTPClient(name: "bench-api")
        say("submit → succeeded: \(sequentialRuns) runs of the 20-step DAG, one at a time")
        for _ in 0..<sequentialRuns {
            let started = ContinuousClock.now
            guard let id = try await submit(client) else { report.errors += 1; continue }
            // Poll closely: this measures the pipeline, not the poll interval.
            while true {
                let (status, run) = try await get(id, client)
                if status != 200 { report.errors += 1; break }
                if let run, run.isFinished {
                    if run.status == "succeeded" {
                        _ = report.submitToSucceeded.record(UInt64((ContinuousClock.now - started).microseconds))
                    } else {
                        report.errors += 1
                    }
                    break
                }
                try await Task.sleep(for: .milliseconds(5))
            }
        }

        say("\(concurrentRuns) runs at once, while GET /v1/runs/{id} is measured")
        let shared = Shared()
        let began = ContinuousClock.now
        let latencies = try await withThrowingTaskGroup(of: (floor: Bool, samples: [UInt64]).self) { group in
            // Submitters.
            for worker in 0..<16 {
                group.addTask {
                    let client = HTTPClient(name: "bench-submit")
                    for _ in stride(from: worker, to: concurrentRuns, by: 16) {
                        if let id = try await submit(client) { shared.ids.withLock { $0.append(id) } } else { shared.errors.add(1, ordering: .relaxed) }
                    }
                    return (false, [])
                }
            }
            // Readers: GET a random submitted run, as dashboards and `submit --wait` do, at a fixed
            // rate (open loop). Readers that send the next request as soon as the last one is
            // answered are a load of their own: at 800 requests a second they took a core and
            // slowed the runs they were measuring, by more the faster the API answered.
            let readers = 4
            for reader in 0..<readers {
                group.addTask {
                    let samples = try await readAtFixedRate(
                        every: .seconds(Double(readers) / Double(max(1, readRate))), offset: Double(reader) / Double(readers), shared: shared
                    ) { shared.ids.withLock({ $0.randomElement() }).map(request) }
                    return (false, samples)
                }
            }
            // One more reader asks for what needs neither token nor database: how long any request
            // takes while the machine is this busy, against which the run GET's figure is read.
            group.addTask {
                let health = HTTPRequest(url: base + "/healthz")
                return (true, try await readAtFixedRate(every: .seconds(1.0 / Double(Self.floorRate)), offset: 0.5, shared: shared) { health })
            }
            // The watcher counts unfinished runs in Postgres until all are done (listing a thousand
            // runs through the API five times a second would load the server it measures).
            group.addTask {
                var lastSay = ContinuousClock.now
                while true {
                    try await Task.sleep(for: .milliseconds(200))
                    let submitted = shared.ids.withLock { $0.count }
                    let unfinished = try await unfinishedCount()
                    if submitted + shared.errors.load(ordering: .relaxed) >= concurrentRuns && unfinished == 0 { break }
                    if ContinuousClock.now - lastSay > .seconds(5) {
                        lastSay = .now
                        say("\(submitted) submitted, \(unfinished) unfinished")
                    }
                }
                shared.done.store(true, ordering: .relaxed)
                return (false, [])
            }
            var all: (runs: [UInt64], floor: [UInt64]) = ([], [])
            for try await result in group {
                if result.floor { all.floor += result.samples } else { all.runs += result.samples }
            }
            return all
        }
        report.concurrentSeconds = (ContinuousClock.now - began).secondsValue
        for latency in latencies.runs { _ = report.getRun.record(latency) }
        for latency in latencies.floor { _ = report.getHealth.record(latency) }
        report.errors += shared.errors.load(ordering: .relaxed)
        let finished = shared.ids.withLock { $0 }
        var succeeded = 0
        for id in finished {
            let (_, run) = try await get(id, client)
            if run?.status == "succeeded" { succeeded += 1 } else { report.errors += 1 }
        }
        report.concurrentSucceeded = succeeded
        return report
    }

    /// Sends a request every `interval` (the first after `offset` of one) until the runs are done;
    /// a late request goes at once, none is skipped. Returns each request's time in µs, taken on
    /// the HTTP client's own thread around the transfer: the request as the server answers it,
    /// not how long this busy process takes to resume the task. A non-200 answer is an error.
    private func readAtFixedRate(
        every interval: Duration, offset: Double, shared: Shared, _ next: @Sendable () -> HTTPRequest?
    ) async throws -> [UInt64] {
        let client = HTTPClient(name: "bench-read")
        var samples: [UInt64] = []
        var due = ContinuousClock.now + interval * offset
        while !shared.done.load(ordering: .relaxed) {
            try await Task.sleep(until: due)
            due += interval
            guard let request = next() else { continue }
            let response = try await client.send(request)
            samples.append(UInt64(response.elapsed.microseconds))
            if response.status != 200 { shared.errors.add(1, ordering: .relaxed) }
        }
        return samples
    }

    private func submit(_ client: HTTPClient) async throws -> String? {
        let body = JSONValue.object(["pipeline": .string(Self.dag), "sha": .string("0000000")]).jsonText
        let response = try await client.send(.text(.post, base + "/v1/runs", body, headers: [("Authorization", "Bearer \(token)")]))
        guard response.status == 201 else {
            say("submit answered \(response.status): \(response.text.prefix(200))")
            return nil
        }
        return JSONValue.parseObject(response.text)?["id"]?.stringValue
    }

    private func request(_ id: String) -> HTTPRequest {
        HTTPRequest(url: base + "/v1/runs/\(id)", headers: [("Authorization", "Bearer \(token)")])
    }

    private func get(_ id: String, _ client: HTTPClient) async throws -> (Int, RunView?) {
        let response = try await client.send(request(id))
        guard response.status == 200 else { return (response.status, nil) }
        return (response.status, try? JSONDecoder().decode(RunView.self, from: Data(response.body)))
    }

    private func unfinishedCount() async throws -> Int {
        let rows = try await db.run("SELECT count(*) AS n FROM runs WHERE namespace = $1 AND finished_at IS NULL", [namespace])
        return rows.isEmpty ? 0 : rows[0].int("n") ?? 0
    }
}

/// What the benchmark's tasks share.
private final class Shared: Sendable {
    let ids = Mutex<[String]>([])
    let errors = Atomic<Int>(0)
    let done = Atomic<Bool>(false)
}

extension Duration {
    var microseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000 + attoseconds / 1_000_000_000_000
    }

    var secondsValue: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
