import Foundation
import GantryCore
import GantryHTTP
import GantryTestSupport
import Testing

/// What Prometheus scrapes: a worker's `--metrics-listen` and a dispatcher's `/metrics` count
/// the steps that ran, and their text passes `promtool check metrics` (Debian's Prometheus).
@Suite(.timeLimit(.minutes(2))) struct MetricsExportTests {
    static func scrape(_ url: String) async throws -> String {
        let response = try await HTTPClient(name: "test-scrape").send(HTTPRequest(url: url, timeout: .seconds(10)))
        guard response.status == 200 else { throw Failure("\(url): HTTP \(response.status)") }
        return response.text
    }

    /// `promtool check metrics` on the text: its exit status and what it said.
    static func promtool(_ text: String, stem: String) async throws -> Command.Result {
        try await Command.run("/usr/bin/promtool", ["check", "metrics"], stdin: text, stem: stem)
    }

    /// The value of the sample line that starts with `prefix` (name and labels), if there is one.
    static func value(_ text: String, _ prefix: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(prefix + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    @Test func workersAndDispatchersCountWhatRanForPrometheus() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let metricsPort = try APIHarness.freePort()
        let worker = try env.worker("w1", extra: ["--metrics-listen", "127.0.0.1:\(metricsPort)"])
        try await env.waitForHeartbeat(of: "w1")
        let ids = try await env.enqueue(count: 5, with: #"{"exit_code": 0}"#)
        let failing = try await env.enqueue(count: 1, with: #"{"exit_code": 3}"#, maxAttempts: 2)
        try await env.waitForRuns(ids + failing)

        let workerURL = "http://127.0.0.1:\(metricsPort)/metrics"
        var scraped = ""
        try await env.eventually("the worker's counts") {
            scraped = try await Self.scrape(workerURL)
            return Self.value(scraped, #"gantry_steps_finished_total{queue="noop",status="succeeded"}"#) == 5
        }
        #expect(Self.value(scraped, #"gantry_steps_finished_total{queue="noop",status="failed"}"#) == 2, "\(scraped)")
        #expect(Self.value(scraped, #"gantry_steps_started_total{queue="noop"}"#) == 7)
        #expect(Self.value(scraped, #"gantry_attempt_duration_seconds_count{queue="noop"}"#) == 7)
        #expect(Self.value(scraped, #"gantry_pickup_latency_seconds_count{queue="noop"}"#) == 7)
        #expect(scraped.contains("# HELP gantry_pickup_latency_seconds From enqueue to a worker starting the attempt."))
        let workerCheck = try await Self.promtool(scraped, stem: env.logDirectory + "-promtool-worker")
        #expect(workerCheck.status == 0 && workerCheck.out.isEmpty && workerCheck.err.isEmpty, "\(workerCheck)")

        var served = ""
        try await env.eventually("the dispatcher's queue gauges") {
            served = try await Self.scrape(api.base + "/metrics")
            return served.contains(#"gantry_queue_live_workers{queue="noop"} 1"#)
        }
        #expect(Self.value(served, #"gantry_runs_finished_total{status="succeeded"}"#) == 5, "\(served)")
        #expect(Self.value(served, #"gantry_runs_finished_total{status="failed"}"#) == 1)
        #expect(Self.value(served, #"gantry_retries_scheduled_total{queue="noop"}"#) == 1)
        let dispatcherCheck = try await Self.promtool(served, stem: env.logDirectory + "-promtool-dispatcher")
        #expect(dispatcherCheck.status == 0 && dispatcherCheck.out.isEmpty && dispatcherCheck.err.isEmpty, "\(dispatcherCheck)")
        _ = (dispatcher, worker)
    }

    @Test func aMetricsPortThatIsTakenIsNamedInOneLine() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let port = Int(api.base.split(separator: ":").last ?? "") ?? 0
        let worker = try env.worker("w1", extra: ["--metrics-listen", "127.0.0.1:\(port)"])
        #expect(await worker.waitForExit(timeout: .seconds(20)) != 0)
        #expect(worker.log.contains("--metrics-listen 127.0.0.1:\(port): cannot listen there"), "\(worker.log)")
        _ = dispatcher
    }
}
