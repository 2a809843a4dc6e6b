import Foundation
import GantryCore
import GantryDispatcher
import GantryPostgres
import GantryRedis
import GantryRuntime
import GantryTestSupport
import Testing

/// Workers and the dispatcher as real processes against real Redis and Postgres:
/// retries, timeouts, dead letters, lost and stale workers, and drains.
@Suite struct WorkerFleetTests {
    @Test func failuresAreRetriedWithBackoffUntilTheyPass() async throws {
        let env = try await TestEnvironment.make()
        let dispatcher = try env.dispatcher()
        let worker = try env.worker("w1")
        let ids = try await env.enqueue(count: 5, with: #"{"fail_first":2}"#, maxAttempts: 3, backoff: .milliseconds(200))
        let runs = try await env.waitForRuns(ids)
        #expect(runs.allSatisfy { $0.status == "succeeded" })
        for (_, attempts) in try await env.ledger(ids) {
            #expect(attempts.map(\.status) == [.failed, .failed, .succeeded])
            #expect(attempts.map(\.key.attempt) == [1, 2, 3])
            #expect(attempts[0].exitCode == 1)
            // Each retry waited in the delayed set: never before the attempt before it ended.
            #expect(attempts[1].startedAtUs >= attempts[0].finishedAtUs)
            #expect(attempts[2].startedAtUs >= attempts[1].finishedAtUs)
        }
        _ = (dispatcher, worker)
    }

    /// Workers trim acknowledged entries a few times a second, not after every batch; what the
    /// last batches left goes with the next heartbeat (every lease / 3), so a worker that falls
    /// idle leaves an empty stream behind.
    @Test func aWorkerThatFallsIdleLeavesAnEmptyStreamBehind() async throws {
        let env = try await TestEnvironment.make()
        let dispatcher = try env.dispatcher()
        let worker = try env.worker("w1", lease: "1500ms")
        let ids = try await env.enqueue(count: 300)
        #expect(try await env.waitForRuns(ids).allSatisfy { $0.status == "succeeded" })
        let redis = env.redis()
        try await env.eventually("the stream to be trimmed", timeout: .seconds(5)) {
            try await redis.command(["XLEN", env.keys.stream("noop")]).integer == 0
        }
        _ = (dispatcher, worker)
    }

    /// A dispatcher applies outcomes in two lanes, each its own events consumer, and a read takes
    /// a transaction's worth of events: a backlog is shared between the lanes instead of being
    /// taken whole by the first (one lane fell behind the workers and left the machine half idle).
    @Test func aBacklogOfEventsIsSharedByTheDispatchersTwoLanes() async throws {
        let env = try await TestEnvironment.make()
        let ids = try await env.enqueue(count: 400)
        // The outcomes are recorded and published while no dispatcher runs.
        let worker = try env.worker("w1", concurrency: 4)
        let redis = env.redis()
        try await env.eventually("400 outcomes waiting in the events stream") {
            let entries = try await redis.command(["XRANGE", env.keys.events, "-", "+"]).array ?? []
            let outcomes = entries.reduce(0) { sum, entry in
                let fields = (entry.array?.last?.array ?? []).compactMap(\.string)
                let pairs = stride(from: 0, to: fields.count - 1, by: 2).map { (fields[$0], fields[$0 + 1]) }
                return sum + AttemptResult.outcomes(inEvent: pairs).outcomes.count
            }
            return outcomes == 400
        }
        let dispatcher = try env.dispatcher(["--log-level", "debug"])
        #expect(try await env.waitForRuns(ids).allSatisfy { $0.status == "succeeded" })
        let applied = dispatcher.log.split(separator: "\n").filter { $0.contains("applied outcomes") }
        #expect(applied.contains { $0.contains("gantry.consumer=dispatcher-dispatcher ") }, "\(applied)")
        #expect(applied.contains { $0.contains("gantry.consumer=dispatcher-dispatcher#2 ") }, "\(applied)")
        // Each lane acknowledges what it applied (after the commit the runs were seen by, so wait for it).
        try await env.eventually("every event acknowledged", timeout: .seconds(5)) {
            try await redis.command(["XPENDING", env.keys.events, QueueKeys.dispatcherGroup]).array?.first?.integer == 0
        }
        _ = worker
    }

    @Test func aNameRedisWouldRefuseIsRefusedAtStartNamingTheFlag() async throws {
        // A worker or replica name with a space used to start, fail CLIENT SETNAME, and retry forever.
        let env = try await TestEnvironment.make()
        let worker = try env.start(["worker", "--kind", "noop", "--id", "hand worker 1"], name: "bad-worker")
        #expect(await worker.waitForExit(timeout: .seconds(10)) == 64)
        #expect(worker.log.contains("--id 'hand worker 1': a worker's name is 1-100 printable ASCII characters without spaces"))
        let dispatcher = try env.start(["dispatcher", "--id", "replica\t2"], name: "bad-dispatcher")
        #expect(await dispatcher.waitForExit(timeout: .seconds(10)) == 64)
        #expect(dispatcher.log.contains("--id 'replica\t2': a replica's name is 1-100 printable ASCII characters without spaces"))
    }

    @Test func enqueueRefusesWhatCouldNeverRunNamingTheFlag() async throws {
        // Each of these used to be accepted: a kind no worker takes waited in its queue forever, a
        // zero timeout failed on a database constraint, a cap below the first delay was silently moved.
        let env = try await TestEnvironment.make()
        let cases: [([String], String)] = [
            (["--kind", "nop"], "--kind 'nop': no such kind; did you mean 'noop'?; known kinds: backup, build, deploy, metrics-watch, noop, notify, scan, smoke-test"),
            (["--kind", "noop", "--timeout", "0s"], "--timeout 0s: must be more than 0, e.g. 10m"),
            (["--kind", "noop", "--backoff", "5s", "--backoff-max", "1s"], "--backoff-max 1s is below --backoff 5s; raise --backoff-max or lower --backoff"),
        ]
        for (index, (arguments, message)) in cases.enumerated() {
            let enqueue = try env.start(["enqueue"] + arguments, name: "bad-enqueue-\(index)")
            #expect(await enqueue.waitForExit(timeout: .seconds(10)) == 64, "\(arguments)")
            #expect(enqueue.log.contains("Error: " + message), "\(enqueue.log)")
        }
        #expect(try await env.db().run("SELECT count(*) AS n FROM runs WHERE pipeline LIKE 'enqueue:%'")[0].int("n") == 0)
    }

    @Test func onlyAllowedExitCodesAreRetriedAndExhaustedStepsAreDead() async throws {
        let env = try await TestEnvironment.make()
        let dispatcher = try env.dispatcher()
        let worker = try env.worker("w1")
        let notRetried = try await env.enqueue(count: 1, with: #"{"exit_code":3}"#, maxAttempts: 5, onExitCodes: [75])
        let exhausted = try await env.enqueue(count: 1, with: #"{"exit_code":75}"#, maxAttempts: 2, backoff: .milliseconds(50), onExitCodes: [75])
        let runs = try await env.waitForRuns(notRetried + exhausted)
        #expect(runs.allSatisfy { $0.status == "failed" })
        #expect(try await env.attempts(notRetried[0]).map(\.status) == [.failed])
        #expect(try await env.attempts(exhausted[0]).map(\.exitCode) == [75, 75])
        // Listed as dead: failed steps with their last error.
        let dead = try await env.db().run("SELECT run_id::text AS run, attempt, last_error FROM steps WHERE status = 'failed' ORDER BY run_id")
        #expect(Set((0..<dead.count).compactMap { dead[$0].string("run") }) == Set(notRetried + exhausted))
        #expect((0..<dead.count).allSatisfy { dead[$0].string("last_error")?.contains("exiting with code") == true })
        _ = (dispatcher, worker)
    }

    @Test func aTimeoutStopsTheAttemptAndCountsAsOne() async throws {
        let env = try await TestEnvironment.make()
        let dispatcher = try env.dispatcher()
        let worker = try env.worker("w1")
        let ids = try await env.enqueue(count: 1, with: #"{"hang":true}"#, maxAttempts: 2, backoff: .milliseconds(50), timeout: .milliseconds(700))
        let runs = try await env.waitForRuns(ids)
        #expect(runs[0].status == "failed")
        let attempts = try await env.attempts(ids[0])
        #expect(attempts.map(\.status) == [.timedOut, .timedOut])
        for attempt in attempts {
            let ms = (attempt.finishedAtUs - attempt.startedAtUs) / 1_000
            // The timeout counts from delivery; the attempt's start is stamped a moment later (698 ms was seen).
            #expect(ms >= 650 && ms < 1_500, "attempt ran \(ms) ms for a 700 ms timeout")
        }
        _ = (dispatcher, worker)
    }

    @Test func aMessageThatIsNotAJobIsDeadLetteredAndTheWorkerCarriesOn() async throws {
        let env = try await TestEnvironment.make()
        let redis = env.redis()
        try await env.queue.prepare(kinds: ["noop"], on: redis)
        let dispatcher = try env.dispatcher()
        let worker = try env.worker("w1")
        try await redis.command(["XADD", env.keys.stream("noop"), "*", "v", "1", "run", "not-a-run", "step", "x"])
        try await redis.command(["XADD", env.keys.stream("noop"), "*", "garbage", "\u{1}\u{2}"])
        let ids = try await env.enqueue(count: 3)
        #expect(try await env.waitForRuns(ids).allSatisfy { $0.status == "succeeded" })
        try await env.eventually("two dead letters") {
            try await env.queue.deadLetters(kind: "noop", limit: 10, on: redis).count == 2
        }
        let reasons = try await env.queue.deadLetters(kind: "noop", limit: 10, on: redis)
            .compactMap { Dictionary($0.fields, uniquingKeysWith: { a, _ in a })["reason"] }
        #expect(reasons == ["job field 'run' is not a run id", "job field 'v' is missing"])
        #expect(worker.isRunning)
        _ = dispatcher
    }

    @Test func anExpiredLeaseIsReclaimedRecordedLostAndRetried() async throws {
        let env = try await TestEnvironment.make()
        let redis = env.redis()
        let dispatcher = try env.dispatcher()
        // A consumer that takes a delivery and goes silent, as a frozen worker would.
        try await redis.command(["HSET", env.keys.workers, "ghost", #"{"lease_ms":1000}"#])
        let ids = try await env.enqueue(count: 1)
        try await env.queue.prepare(kinds: ["noop"], on: redis)
        #expect(try await env.queue.read(kinds: ["noop"], consumer: "ghost", count: 1, block: .seconds(1), on: redis).count == 1)
        let worker = try env.worker("w1")
        #expect(try await env.waitForRuns(ids, timeout: .seconds(15))[0].status == "succeeded")
        let attempts = try await env.attempts(ids[0])
        #expect(attempts.map(\.status) == [.lost, .succeeded])
        #expect(attempts.map(\.worker) == ["ghost", "w1"])
        _ = (dispatcher, worker)
    }

    @Test func aWorkerThatCommittedAndDiedBeforeAcknowledgingIsHonouredNotRerun() async throws {
        let env = try await TestEnvironment.make()
        let redis = env.redis()
        try await redis.command(["HSET", env.keys.workers, "ghost", #"{"lease_ms":1000}"#])
        let ids = try await env.enqueue(count: 1)
        try await env.queue.prepare(kinds: ["noop"], on: redis)
        let delivery = try #require(try await env.queue.read(kinds: ["noop"], consumer: "ghost", count: 1, block: .seconds(1), on: redis).first)
        let job = try Job(fields: delivery.fields)
        // The ghost commits its outcome, then "dies" before XACK.
        _ = try await AttemptLedger().record([AttemptResult(
            key: AttemptKey(step: job.key, attempt: 1), kind: "noop", status: .succeeded, worker: "ghost",
            startedAtUs: WallClock.nowUs(), finishedAtUs: WallClock.nowUs(), deliveryID: delivery.id
        )], on: env.db())
        let dispatcher = try env.dispatcher()
        let worker = try env.worker("w1")
        #expect(try await env.waitForRuns(ids, timeout: .seconds(15))[0].status == "succeeded")
        #expect(try await env.attempts(ids[0]).map(\.worker) == ["ghost"])
        #expect(try await env.queue.depth(kind: "noop", on: redis) == (0, 0))
        _ = (dispatcher, worker)
    }

    @Test func aSIGKILLedWorkersFiftyStepsAreRedeliveredWithinTheLeaseAndSucceedOnce() async throws {
        let env = try await TestEnvironment.make()
        let redis = env.redis()
        let dispatcher = try env.dispatcher()
        let doomed = try env.worker("doomed", concurrency: 64, lease: "2s")
        try await env.waitForHeartbeat(of: "doomed")
        let ids = try await env.enqueue(count: 50, with: #"{"sleep_ms":4000}"#)
        try await env.eventually("50 steps in flight on the doomed worker") {
            try await env.queue.expired(kind: "noop", minIdle: .zero, count: 100, on: redis).filter { $0.consumer == "doomed" }.count == 50
        }
        doomed.signal(SIGKILL)
        let killedAtUs = WallClock.nowUs()
        await doomed.waitForExit()
        let rescuer = try env.worker("rescuer", concurrency: 64, lease: "2s")
        let runs = try await env.waitForRuns(ids, timeout: .seconds(30))
        #expect(runs.allSatisfy { $0.status == "succeeded" })
        for (_, attempts) in try await env.ledger(ids) {
            #expect(attempts.map(\.status) == [.lost, .succeeded])
            #expect(attempts.map(\.worker) == ["doomed", "rescuer"])
            // Re-delivered within lease + 2 s of the kill.
            let redeliveredAfterMs = (attempts[1].startedAtUs - killedAtUs) / 1_000
            #expect(redeliveredAfterMs <= 4_000, "re-delivered \(redeliveredAfterMs) ms after the kill")
        }
        _ = (dispatcher, rescuer)
    }

    @Test func aWorkerThatLostItsLeaseIsRecordedStale() async throws {
        let env = try await TestEnvironment.make()
        let redis = env.redis()
        let dispatcher = try env.dispatcher()
        // Concurrency 1: once it holds the step it does not read, so the retry cannot land on it while frozen.
        let frozen = try env.worker("frozen", concurrency: 1, lease: "1s")
        try await env.waitForHeartbeat(of: "frozen")
        let ids = try await env.enqueue(count: 1, with: #"{"sleep_ms":4000}"#)
        // A generous wait: with the whole suite running on two cores a worker can take a while to start.
        try await env.eventually("the step in flight", timeout: .seconds(60)) {
            try await env.queue.expired(kind: "noop", minIdle: .zero, count: 10, on: redis).first?.consumer == "frozen"
        }
        // Freeze it past its lease: the reaper reclaims the step and a healthy worker runs it.
        frozen.signal(SIGSTOP)
        let healthy = try env.worker("healthy", lease: "1s")
        try await env.eventually("the step succeeding elsewhere", timeout: .seconds(20)) {
            try await env.attempts(ids[0]).contains { $0.status == .succeeded && $0.worker == "healthy" }
        }
        frozen.signal(SIGCONT)
        try await env.eventually("the frozen worker's outcome recorded stale", timeout: .seconds(20)) {
            try await env.attempts(ids[0]).contains { $0.status == .stale && $0.worker == "frozen" }
        }
        let attempts = try await env.attempts(ids[0])
        #expect(attempts.filter { $0.status != .stale }.map(\.status) == [.lost, .succeeded])
        #expect(attempts.first { $0.status == .stale }?.key.attempt == 1)
        #expect(try await env.waitForRuns(ids)[0].status == "succeeded")
        _ = (dispatcher, healthy)
    }

    @Test func SIGTERMDrainsFinishesWhatItCanAndHandsBackTheRest() async throws {
        let env = try await TestEnvironment.make()
        let redis = env.redis()
        let dispatcher = try env.dispatcher()
        // The grace is long beside the quick steps and short beside the slow ones, so that a loaded
        // machine neither runs a quick step past it nor a slow one within it.
        let draining = try env.worker("draining", concurrency: 8, extra: ["--drain-grace", "4s"])
        try await env.waitForHeartbeat(of: "draining")
        let quick = try await env.enqueue(count: 3, with: #"{"sleep_ms":200}"#)
        // Beside their 30 s timeout, the slow ones leave room for the successor to run them whole.
        let slow = try await env.enqueue(count: 2, with: #"{"sleep_ms":10000}"#)
        // All five taken by the worker: held now, or (the quick ones, on a loaded machine) already done.
        try await env.eventually("5 steps taken") {
            let held = try await env.queue.expired(kind: "noop", minIdle: .zero, count: 10, on: redis).count
            var done = 0
            for id in quick where try await !env.attempts(id).isEmpty { done += 1 }
            return held + done == 5
        }
        draining.signal(SIGTERM)
        let more = try await env.enqueue(count: 2)
        #expect(await draining.waitForExit(timeout: .seconds(15)) == 0)
        // It took nothing new while draining.
        #expect(try await env.queue.depth(kind: "noop", on: redis).length >= 2)
        let successor = try env.worker("successor")
        let runs = try await env.waitForRuns(quick + slow + more, timeout: .seconds(45))
        #expect(runs.allSatisfy { $0.status == "succeeded" })
        for id in quick { #expect(try await env.attempts(id).map(\.worker) == ["draining"]) }
        for id in slow {
            let attempts = try await env.attempts(id)
            #expect(attempts.map(\.status) == [.interrupted, .succeeded])
            #expect(attempts.map(\.worker) == ["draining", "successor"])
        }
        #expect(try await redis.command(["HEXISTS", env.keys.workers, "draining"]).integer == 0)
        _ = (dispatcher, successor)
    }

    /// A drain shuts the reader's socket down mid-read; entries Redis delivered in that read
    /// are pending under the worker's name though it never saw them. Here the test plays that
    /// read itself: the drain must take them and run them, not leave them to the lease.
    @Test func aDrainTakesBackEntriesDeliveredToItButNeverSeen() async throws {
        let env = try await TestEnvironment.make()
        let redis = env.redis()
        try await env.queue.prepare(kinds: ["noop"], on: redis)
        let dispatcher = try env.dispatcher()
        let ids = try await env.enqueue(count: 3)
        let cutOff = try await env.queue.read(kinds: ["noop"], consumer: "orphaned", count: 10, block: .milliseconds(500), on: redis)
        #expect(cutOff.count == 3)
        let worker = try env.worker("orphaned", concurrency: 8, lease: "30s", extra: ["--drain-grace", "5s"])
        try await env.waitForHeartbeat(of: "orphaned")
        #expect(await worker.stop() == 0)
        // Well before the 30 s lease could have brought them back.
        let runs = try await env.waitForRuns(ids, timeout: .seconds(10))
        #expect(runs.allSatisfy { $0.status == "succeeded" })
        for id in ids { #expect(try await env.attempts(id).map(\.status) == [.succeeded]) }
        #expect(try await env.queue.depth(kind: "noop", on: redis) == (0, 0))
        _ = dispatcher
    }
}

/// Two installations may share a database; each dispatcher reconciles only its own.
@Suite struct NamespaceTests {
    @Test func aReconcilerLeavesAnotherInstallationsStepsAlone() async throws {
        let env = try await TestEnvironment.make()
        let redis = env.redis()
        let otherKeys = QueueKeys(namespace: env.namespace + "-other")
        let request = Enqueuer.Request(
            kind: "noop", inputs: "{}", policy: RetryPolicy(), timeout: .seconds(30), pipeline: "test", submitter: "test"
        )
        let theirs = try await Enqueuer(keys: otherKeys).enqueue(request, count: 5, redis: redis, db: env.db())
        // One step of our own that Redis lost: its re-enqueue shows that the reconciler made a
        // pass, in which it would have taken their steps too had it looked beyond its namespace.
        _ = try await Enqueuer(keys: env.keys).enqueue(request, count: 1, redis: redis, db: env.db())
        try await redis.command(["DEL", env.keys.stream("noop")])
        let dispatcher = try env.dispatcher(["--reconcile-after", "200ms", "--reconcile-interval", "200ms"])
        try await env.eventually("our lost step re-enqueued") {
            try await redis.command(["XLEN", env.keys.stream("noop")]).integer == 1
        }
        #expect(try await redis.command(["XLEN", otherKeys.stream("noop")]).integer == 5)
        #expect(try await RunStore().unfinishedCount(theirs, on: env.db()) == 5)
        _ = dispatcher
    }
}

/// `gantry enqueue --wait` with nobody to run the steps says so instead of waiting in silence.
@Suite struct EnqueueWaitTests {
    @Test func enqueueWaitSaysWhenNoWorkerTakesTheKindAndEndsOnceOneDoes() async throws {
        let env = try await TestEnvironment.make()
        let dispatcher = try env.dispatcher()
        let waiting = try env.start(["enqueue", "--kind", "noop", "--count", "2", "--wait"], name: "enqueue")
        let hint = "no worker of kind noop is running in namespace \(env.namespace); the runs wait for one"
        let deadline = ContinuousClock.now + .seconds(15)
        var log = ""
        while ContinuousClock.now < deadline {
            log = (try? String(contentsOfFile: waiting.logPath, encoding: .utf8)) ?? ""
            if log.contains(hint) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(log.contains(hint), "\(log)")
        #expect(log.contains("0/2 runs ended"))
        let worker = try env.worker("w1")
        #expect(await waiting.waitForExit(timeout: .seconds(30)) == 0)
        let redis = env.redis()
        let fleet = FleetRegistry(keys: env.keys)
        #expect(try await fleet.liveWorkers(kind: "noop", nowMs: WallClock.nowMs(), on: redis) == ["w1"])
        #expect(try await fleet.liveWorkers(kind: "build", nowMs: WallClock.nowMs(), on: redis).isEmpty)
        // A heartbeat older than its lease is a worker that died without saying so.
        #expect(try await fleet.liveWorkers(kind: "noop", nowMs: WallClock.nowMs() + 60_000, on: redis).isEmpty)
        _ = (dispatcher, worker)
    }
}

/// `gantry bench` itself, small: it drains its steps through a real fleet and says so, and what
/// it could not measure it reports as not measured, never as a zero.
@Suite struct BenchCommandTests {
    @Test func aSmallBenchDrainsItsStepsAndReportsWhatItCouldNotMeasureAsNull() async throws {
        let env = try await TestEnvironment.make()
        let bench = try env.start(
            ["bench", "--steps", "300", "--latency-samples", "0", "--workers", "1", "--concurrency", "8", "--output", "json"],
            name: "bench"
        )
        #expect(await bench.waitForExit(timeout: .seconds(90)) == 0)
        let log = try String(contentsOfFile: bench.logPath, encoding: .utf8)
        let line = try #require(log.split(separator: "\n").last { $0.hasPrefix("{") }, "no JSON line in \(bench.logPath)")
        let report = try #require(JSONValue.parseObject(String(line)))
        #expect(report["steps"]?.intValue == 300)
        #expect(report["lost"]?.intValue == 0 && report["failed"]?.intValue == 0)
        #expect((report["end_to_end_per_s"]?.doubleValue ?? 0) > 0)
        #expect(report["pickup_p50_ms"] == .null && report["pickup_p99_ms"] == .null)
        // CPU per step is shown only once the parts used 2 s of CPU in all (Postgres counts every
        // backend of the server, so other tests running at the same time can push it over).
        if report["cpu_us_per_step"] != .null {
            guard case .object(let cpu)? = report["cpu_us_per_step"] else { Issue.record("cpu_us_per_step is neither null nor an object"); return }
            let total = try #require(cpu["total"]?.doubleValue)
            #expect(total * 300 >= 2_000_000, "shown with \(total) µs per step")
        }
        let runs = try await env.db().run(
            "SELECT count(*) AS n, count(*) FILTER (WHERE status = 'succeeded') AS ok FROM runs WHERE pipeline = $1",
            ["bench:\(env.namespace)"]
        )
        #expect(runs[0].int("n") == 300 && runs[0].int("ok") == 300)
    }
}
