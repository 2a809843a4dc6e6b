import Foundation
import GantryCore
import GantryHTTP
import GantryPostgres
import GantryRedis
import GantryTestSupport
import Testing

/// The dispatcher as a replaceable process: SIGKILLed mid-run and restarted, or
/// running twice at once, it never loses or duplicates a transition.
@Suite struct RunAPIResilienceTests {
    /// 20 noop steps, fan-out 8, depth 5: 1 → 8 → 8 → 2 → 1.
    static func dag(sleepMs: Int) -> String {
        var lines = ["pipeline: dag", "environment: staging", "steps:", "  - { id: s0, kind: noop, with: { sleep_ms: \(sleepMs) } }"]
        for i in 1...8 { lines.append("  - { id: a\(i), kind: noop, needs: [s0], with: { sleep_ms: \(sleepMs) } }") }
        for i in 1...8 { lines.append("  - { id: b\(i), kind: noop, needs: [a\(i)], with: { sleep_ms: \(sleepMs) } }") }
        lines.append("  - { id: c1, kind: noop, needs: [b1, b2, b3, b4], with: { sleep_ms: \(sleepMs) } }")
        lines.append("  - { id: c2, kind: noop, needs: [b5, b6, b7, b8], with: { sleep_ms: \(sleepMs) } }")
        lines.append("  - { id: d, kind: noop, needs: [c1, c2], with: { sleep_ms: \(sleepMs) } }")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Every step succeeded with exactly one attempt and no ledger row is duplicated.
    func expectEachStepRanOnce(_ run: RunView) {
        #expect(run.status == "succeeded")
        #expect(run.steps.count == 20)
        for step in run.steps {
            #expect(step.status == "succeeded", "\(step.id) is \(step.status)")
            #expect(step.attempts.map(\.status) == ["succeeded"], "\(step.id): \(step.attempts.map(\.status))")
        }
    }

    /// A replica asked to serve the API where something already listens stops at once with one
    /// line naming the flag, instead of running on without its API (it used to, and reported the
    /// bind error only when it was stopped).
    @Test func aDispatcherWhoseListenAddressIsTakenExitsAtOnceNamingTheFlag() async throws {
        let env = try await TestEnvironment.make()
        let (api, first) = try await APIHarness.start(env)
        let second = try env.dispatcher(["--listen", "127.0.0.1:\(api.port)"], name: "second")
        #expect(await second.waitForExit(timeout: .seconds(10)) == 1)
        #expect(second.log.contains(
            "Error: --listen 127.0.0.1:\(api.port): cannot listen there: Address already in use (errno 98); stop what holds it or pick another --listen"
        ), "\(second.log)")
        #expect(first.isRunning)
        #expect(try await api.call(.get, "/healthz", token: nil).status == 200)
    }

    @Test func aDispatcherSIGKILLedMidRunAndRestartedFinishesTheRunWithoutDuplicates() async throws {
        let env = try await TestEnvironment.make()
        let fast = ["--reconcile-after", "1s", "--reconcile-interval", "500ms"]
        var (api, dispatcher) = try await APIHarness.start(env, name: "d1", extra: ["--id", "d1"] + fast)
        let worker = try env.worker("w1", concurrency: 16)
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let id = try await api.submit(Self.dag(sleepMs: 150), token: token).json.id
        try await api.wait(id, token: token, for: "the first fan-out to finish") { run in
            run.steps.filter { $0.id.hasPrefix("a") && $0.status == "succeeded" }.count >= 4
        }
        dispatcher.signal(SIGKILL)
        await dispatcher.waitForExit()
        // While no dispatcher runs, the workers finish the rest of the fan-out: its outcomes wait
        // in the events stream, unapplied.
        try await env.eventually("the whole first fan-out recorded") {
            let recorded = Set(try await env.attempts(id).filter { $0.status == .succeeded }.map(\.key.step.stepID))
            return (1...8).allSatisfy { recorded.contains("a\($0)") }
        }
        // The same replica comes back (its unacknowledged events are still its own).
        (api, dispatcher) = try await APIHarness.start(env, name: "d1-again", extra: ["--id", "d1"] + fast)
        let run = try await api.wait(id, token: token, timeout: .seconds(30))
        expectEachStepRanOnce(run)
        _ = (dispatcher, worker)
    }

    @Test func twoDispatchersAtOnceNeverMakeTheSameTransitionTwice() async throws {
        let env = try await TestEnvironment.make()
        let (one, first) = try await APIHarness.start(env, name: "d1", extra: ["--id", "d1"])
        let (two, second) = try await APIHarness.start(env, name: "d2", extra: ["--id", "d2"])
        let workers = try (1...2).map { try env.worker("w\($0)", concurrency: 32) }
        let token = try await one.token("ci", [.submitter], env: ["staging"])
        var ids: [String] = []
        for index in 0..<8 {
            let api = index.isMultiple(of: 2) ? one : two
            ids.append(try await api.submit(Self.dag(sleepMs: 5), token: token).json.id)
        }
        for id in ids { expectEachStepRanOnce(try await two.wait(id, token: token, timeout: .seconds(60))) }
        // Both replicas took part in applying outcomes, each with its two lanes.
        let consumers = try await env.redis().command(["XINFO", "CONSUMERS", env.keys.events, "dispatchers"]).array ?? []
        let names = Set(consumers.compactMap { $0.array?.count ?? 0 >= 2 ? $0.array?[1].string : nil })
        #expect(names == ["dispatcher-d1", "dispatcher-d1#2", "dispatcher-d2", "dispatcher-d2#2"])
        _ = (first, second, workers)
    }
}
