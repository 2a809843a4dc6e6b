import Foundation
import GantryCore
import GantryHTTP
import GantryTestSupport
import Hummingbird
import Synchronization
import Testing

/// The metrics-watch kind run by a real worker against a real Prometheus
/// (Debian's, started here on loopback) scraping a local service whose error
/// rate the test turns up, and against the same service's /metrics directly.
@Suite(.serialized) struct MetricsWatchTests {
    /// A service that serves 100 requests a second, a settable share of them failing.
    final class Service: Sendable {
        let ok = Atomic<Int>(0)
        let errors = Atomic<Int>(0)
        /// Failing requests per 10.
        let errorsPerTen = Atomic<Int>(0)

        func tick() {
            let failing = errorsPerTen.load(ordering: .relaxed)
            ok.add(10 - failing, ordering: .relaxed)
            errors.add(failing, ordering: .relaxed)
        }

        var exposition: String {
            """
            # TYPE http_requests_total counter
            http_requests_total{code="200"} \(ok.load(ordering: .relaxed))
            http_requests_total{code="500"} \(errors.load(ordering: .relaxed))

            """
        }
    }

    func serve(_ service: Service, _ body: @Sendable (String) async throws -> Void) async throws {
        let router = Router()
        router.get("/metrics") { _, _ in service.exposition }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    service.tick()
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            try await LocalHTTPServer.serve(router, body)
            group.cancelAll()
        }
    }

    func pipeline(_ provider: String, _ query: String) -> String {
        """
        pipeline: watch
        environment: staging
        steps:
          - id: watch
            kind: metrics-watch
            retry: { max_attempts: 1 }
            with:
              provider: \(provider)
              duration: 6s
              interval: 1s
              failure_limit: 1
              inconclusive_limit: 2
              metrics:
                - { name: error-rate, query: '\(query)', success: "result < 0.05" }
        """
    }

    /// The value of a Prometheus instant query's single sample
    /// (`{"data":{"result":[{"value":[time,"0.3"]}]}}`), if it has one.
    static func value(ofQueryAnswer text: String) -> Double? {
        guard case .object(let data)? = JSONValue.parseObject(text)?["data"],
              case .array(let result)? = data["result"], result.count == 1,
              case .object(let sample) = result[0], case .array(let value)? = sample["value"], value.count == 2
        else { return nil }
        return value[1].stringValue.flatMap { Double($0) }
    }

    @Test func theScrapeProviderPassesAHealthyServiceAndFailsFastWhenErrorsRise() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("watcher", kind: "metrics-watch", concurrency: 4)
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let service = Service()
        try await serve(service) { base in
            let watch = pipeline("{ scrape: { url: \"\(base)/metrics\" } }",
                                 #"rate(http_requests_total{code="500"}) / rate(http_requests_total)"#)
            let healthy = try await api.submit(watch, token: token).json.id
            let passed = try await api.wait(healthy, token: token, timeout: .seconds(30))
            #expect(passed.status == "succeeded", "\(passed.steps.first?.lastError ?? "")")
            #expect(passed.steps.first?.attempts.last?.outputs["measurements"] == .number(6))

            service.errorsPerTen.store(3, ordering: .relaxed)
            let started = ContinuousClock.now
            let failing = try await api.submit(watch, token: token).json.id
            let failed = try await api.wait(failing, token: token, timeout: .seconds(30))
            #expect(failed.status == "failed")
            #expect(failed.steps.first?.attempts.first?.error?.hasPrefix(
                "metrics watch failed after 2 of 6 measurements: error-rate failed 2 measurements (failure_limit 1); last value 0.3") == true,
                "\(failed.steps.first?.attempts.first?.error ?? "")")
            #expect(ContinuousClock.now - started < .seconds(5), "it must not wait out the whole duration")
        }
        _ = await worker.stop()
        _ = await dispatcher.stop()
    }

    @Test func thePrometheusProviderQueriesARealPrometheus() async throws {
        guard let binary = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw Failure("Prometheus is not installed; make test installs Debian's prometheus package")
        }
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("watcher", kind: "metrics-watch", concurrency: 4)
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let service = Service()
        try await serve(service) { base in
            let port = try APIHarness.freePort()
            let dataDirectory = env.logDirectory + "-prometheus"
            let configuration = try api.file("prometheus.yml", """
                global: { scrape_interval: 1s, evaluation_interval: 1s }
                scrape_configs:
                  - job_name: service
                    static_configs: [ { targets: ["\(base.dropFirst("http://".count))"] } ]
                """)
            let prometheus = Process()
            prometheus.executableURL = URL(fileURLWithPath: binary)
            prometheus.arguments = [
                "--config.file=\(configuration)", "--storage.tsdb.path=\(dataDirectory)",
                "--web.listen-address=127.0.0.1:\(port)", "--log.level=warn",
            ]
            prometheus.standardOutput = FileHandle.nullDevice
            prometheus.standardError = FileHandle(forWritingAtPath: "/dev/null")
            try prometheus.run()
            defer {
                // Stopped by its PID, and waited for.
                prometheus.terminate()
                prometheus.waitUntilExit()
                try? FileManager.default.removeItem(atPath: dataDirectory)
            }
            let url = "http://127.0.0.1:\(port)"
            let query = #"sum(rate(http_requests_total{code="500"}[5s])) / sum(rate(http_requests_total[5s]))"#
            // Until Prometheus has scraped enough to answer.
            try await env.eventually("Prometheus to have a rate", timeout: .seconds(30)) {
                let answer = try? await api.http.send(.init(url: "\(url)/api/v1/query?query=\(PercentEncoding.encode(query))"))
                return answer.map { $0.status == 200 && $0.text.contains("\"value\"") } ?? false
            }
            let watch = pipeline("{ prometheus: { url: \"\(url)\" } }", query)
            let healthy = try await api.submit(watch, token: token).json.id
            let passed = try await api.wait(healthy, token: token, timeout: .seconds(30))
            #expect(passed.status == "succeeded", "\(passed.steps.first?.lastError ?? "")")

            service.errorsPerTen.store(5, ordering: .relaxed)
            // Until the 5 s window has seen the new rate: the query answers twice the watch's limit
            // (0.05), and rises from there while the window fills.
            try await env.eventually("Prometheus to see the errors", timeout: .seconds(30)) {
                guard let answer = try? await api.http.send(.init(url: "\(url)/api/v1/query?query=\(PercentEncoding.encode(query))")),
                      answer.status == 200 else { return false }
                return Self.value(ofQueryAnswer: answer.text).map { $0 >= 0.1 } ?? false
            }
            let failing = try await api.submit(watch, token: token).json.id
            let failed = try await api.wait(failing, token: token, timeout: .seconds(30))
            #expect(failed.status == "failed")
            #expect(failed.steps.first?.attempts.first?.error?.contains("error-rate failed 2 measurements (failure_limit 1)") == true,
                    "\(failed.steps.first?.attempts.first?.error ?? "")")
            let log = try await api.cli(["logs", failing, "--step", "watch"], token: token).out
            #expect(log.contains("[1/6] error-rate = ") && log.contains(": failed"), "\(log)")
        }
        _ = await worker.stop()
        _ = await dispatcher.stop()
    }
}
