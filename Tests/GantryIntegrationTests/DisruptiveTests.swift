import Foundation
import GantryCore
import GantryPostgres
import GantryRedis
import Testing

/// Tests that stop Postgres or restart and flush Redis. `make test` runs them
/// alone, after everything else (`--filter Disruptive`), one at a time.
@Suite(.serialized) struct DisruptiveTests {
    @Test func postgresAwayForTenSecondsLosesNothingAndAcksNothingEarly() async throws {
        let env = try await TestEnvironment.make()
        // The reconciler is held off, so nothing could paper over a dropped result.
        let dispatcher = try env.dispatcher(["--reconcile-after", "10m"])
        let workers = try (1...2).map { try env.worker("w\($0)", concurrency: 32, lease: "2s") }
        let redis = env.redis()
        let ids = try await env.enqueue(count: 2_000, with: #"{"sleep_ms":20}"#)
        try await env.eventually("some runs finished before the outage") {
            try await RunStore().unfinishedCount(ids, on: env.db()) < 1_900
        }
        try await env.services("stop-postgres")
        let stoppedAt = ContinuousClock.now
        // While Postgres is away nothing can be recorded, so nothing may be acknowledged:
        // whatever the workers hold stays pending.
        try await Task.sleep(for: .seconds(2))
        let heldEarly = try await env.queue.depth(kind: "noop", on: redis)
        try await Task.sleep(for: .seconds(6))
        let heldLate = try await env.queue.depth(kind: "noop", on: redis)
        #expect(heldLate.pending == heldEarly.pending && heldLate.length == heldEarly.length)
        #expect(heldLate.pending > 0)
        try await Task.sleep(until: stoppedAt + .seconds(10))
        try await env.services("start-postgres")
        let runs = try await env.waitForRuns(ids, timeout: .seconds(120))
        #expect(runs.count == 2_000)
        #expect(runs.allSatisfy { $0.status == "succeeded" })
        let counts = try await env.db().run(
            "SELECT status, count(*) AS n FROM attempts GROUP BY status ORDER BY status"
        )
        let byStatus = Dictionary((0..<counts.count).map { (counts[$0].string("status") ?? "", counts[$0].int("n") ?? 0) }, uniquingKeysWith: +)
        // Leases were kept alive through the outage: no attempt was lost, each step succeeded once.
        #expect(byStatus == ["succeeded": 2_000])
        _ = (dispatcher, workers)
    }

    @Test func aRedisRestartWithItsAppendOnlyFileLosesNothing() async throws {
        let env = try await TestEnvironment.make()
        let dispatcher = try env.dispatcher(["--reconcile-after", "10m"])
        let worker = try env.worker("w1", concurrency: 8)
        let ids = try await env.enqueue(count: 300, with: #"{"sleep_ms":20}"#)
        try await env.eventually("some runs finished") {
            try await RunStore().unfinishedCount(ids, on: env.db()) < 280
        }
        try await env.services("restart-redis")
        let runs = try await env.waitForRuns(ids, timeout: .seconds(90))
        #expect(runs.allSatisfy { $0.status == "succeeded" })
        _ = (dispatcher, worker)
    }

    @Test func afterRedisIsFlushedTheReconcilerReenqueuesEveryUnfinishedStep() async throws {
        let env = try await TestEnvironment.make()
        let redis = env.redis()
        // Steps in every non-terminal place: waiting in the stream, waiting for a retry, and held by a worker.
        let waiting = try await env.enqueue(count: 50)
        let retrying = try await env.enqueue(count: 10, with: #"{"fail_first":1}"#, backoff: .seconds(1))
        let dispatcher = try env.dispatcher(["--reconcile-after", "1s", "--reconcile-interval", "500ms"])
        let held = try env.worker("held", concurrency: 64, extra: ["--drain-grace", "0s"])
        try await env.eventually("the retries scheduled") {
            try await redis.command(["ZCARD", env.keys.delayed]).integer ?? 0 >= 1
        }
        _ = await held.stop()
        let slow = try await env.enqueue(count: 5, with: #"{"sleep_ms":3000}"#)
        try await redis.command(["FLUSHALL"])
        let worker = try env.worker("w1", concurrency: 64)
        let runs = try await env.waitForRuns(waiting + retrying + slow, timeout: .seconds(60))
        let unfinished = runs.filter { $0.status != "succeeded" }
        #expect(unfinished.isEmpty, "not succeeded: \(unfinished.map(\.id))")
        // The flushed attempts went out again marked recovered; no step ran twice to success.
        for (_, attempts) in try await env.ledger(waiting + retrying + slow) {
            #expect(attempts.filter { $0.status == .succeeded }.count == 1)
        }
        _ = (dispatcher, worker)
    }
}
