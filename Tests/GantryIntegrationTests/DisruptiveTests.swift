import Foundation
import GantryCore
import GantryPostgres
import GantryRedis
import GantryTestSupport
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
        // Quiet the fleet, then compare what Redis holds before and after the restart: every
        // acknowledgement and result event (written together in MULTI … EXEC) must come back
        // from the append-only file, not be recovered later by the reaper or the reconciler.
        // The dispatcher first, so that the worker's last outcomes stay in the events stream.
        _ = await dispatcher.stop()
        try await env.eventually("outcomes waiting in the events stream") { try await queueState(env).events >= 20 }
        _ = await worker.stop()
        let before = try await queueState(env)
        try await env.services("restart-redis")
        let after = try await queueState(env)
        #expect(after == before)

        let again = try env.dispatcher(["--reconcile-after", "10m"], name: "dispatcher-2")
        let worker2 = try env.worker("w2", concurrency: 8)
        let runs = try await env.waitForRuns(ids, timeout: .seconds(90))
        #expect(runs.allSatisfy { $0.status == "succeeded" })
        for (_, attempts) in try await env.ledger(ids) {
            #expect(attempts.map(\.status) == [.succeeded])
        }
        _ = (again, worker2)
    }

    private struct QueueState: Equatable {
        var length: Int64
        var pending: Int64
        var events: Int64
        var delayed: Int64
    }

    private func queueState(_ env: TestEnvironment) async throws -> QueueState {
        let redis = env.redis()
        let depth = try await env.queue.depth(kind: "noop", on: redis)
        let replies = try await redis.pipeline([["XLEN", env.keys.events], ["ZCARD", env.keys.delayed]])
        return QueueState(length: depth.length, pending: depth.pending, events: replies[0].integer ?? 0, delayed: replies[1].integer ?? 0)
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
