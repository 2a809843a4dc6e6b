import Foundation
import GantryCore
import GantryTestSupport
import Hummingbird
import Synchronization
import Testing

/// The smoke-test kind run by a real worker process against a local server that
/// answers well, slowly, wrongly, or only after a few tries.
@Suite struct SmokeTestTests {
    final class Counter: Sendable { let value = Atomic<Int>(0) }

    func router(flakyCalls: Counter) -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/healthy") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"],
                     body: .init(byteBuffer: ByteBuffer(string: #"{"status":"UP","checks":[{"name":"db","ok":true}]}"#)))
        }
        router.get("/flaky") { _, _ -> Response in
            // Down for the first two calls, up after.
            let call = flakyCalls.value.add(1, ordering: .relaxed).newValue
            return Response(status: call <= 2 ? .serviceUnavailable : .ok)
        }
        router.get("/slow") { _, _ -> String in
            try await Task.sleep(for: .milliseconds(300))
            return "UP"
        }
        router.get("/wrong") { _, _ in "DOWN" }
        return router
    }

    @Test func checksRetryUntilTheyPassAndFailingChecksFailTheStepWithTheReason() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("smoker", kind: "smoke-test", concurrency: 4)
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let flaky = Counter()
        try await LocalHTTPServer.serve(router(flakyCalls: flaky)) { base in
            let passing = """
                pipeline: smoke
                environment: staging
                steps:
                  - id: smoke
                    kind: smoke-test
                    with:
                      attempts: 4
                      interval: 100ms
                      checks:
                        - { name: api, url: "\(base)/healthy", expect_json: { status: UP, "checks.0.name": db, "checks.0.ok": true } }
                        - { name: billing, url: "\(base)/flaky", expect_status: 200 }
                """
            let good = try await api.submit(passing, token: token).json.id
            let run = try await api.wait(good, token: token)
            #expect(run.status == "succeeded", "\(run.steps.first?.lastError ?? "")")
            let outputs = try #require(run.steps.first?.attempts.last?.outputs)
            guard case .array(let checks)? = outputs["checks"], checks.count == 2,
                  case .object(let apiCheck)? = checks.first, case .object(let billing)? = checks.last else {
                Issue.record("unexpected outputs \(outputs)")
                return
            }
            #expect(apiCheck["passed"] == .bool(true) && apiCheck["attempts"] == .number(1) && apiCheck["status"] == .number(200))
            #expect(billing["passed"] == .bool(true) && billing["attempts"] == .number(3))
            let log = try await api.cli(["logs", good, "--step", "smoke"], token: token).out
            #expect(log.contains("check billing: expected status 200, got 503 (status 503"))

            let failing = """
                pipeline: smoke-bad
                environment: staging
                steps:
                  - id: smoke
                    kind: smoke-test
                    retry: { max_attempts: 1 }
                    with:
                      attempts: 2
                      interval: 50ms
                      checks:
                        - { name: content, url: "\(base)/wrong", expect_body_contains: UP }
                        - { name: latency, url: "\(base)/slow", max_latency_ms: 100 }
                        - { name: nothing-there, url: "http://127.0.0.1:1/", timeout: 1s }
                """
            let bad = try await api.submit(failing, token: token).json.id
            let failed = try await api.wait(bad, token: token)
            #expect(failed.status == "failed")
            let error = failed.steps.first?.attempts.last?.error ?? ""
            #expect(error == "smoke test failed: check 'content' body does not contain 'UP' after 2 attempts (and 2 more)", "\(error)")
        }
        _ = (dispatcher, worker)
    }
}
