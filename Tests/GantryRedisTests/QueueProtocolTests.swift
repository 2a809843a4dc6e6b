import Foundation
import GantryCore
import GantryRedis
import GantryRuntime
import GantryTestSupport
import Testing

/// The queue protocol against the real Redis: delivery is the lease, only the
/// owner renews, expired leases are found and taken atomically, due retries move
/// atomically, and a bad password never shows.
@Suite struct QueueProtocolTests {
    func job(_ env: TestEnvironment, attempt: Int = 1) -> Job {
        var random = SystemRandomNumberGenerator()
        return Job(runID: Identifiers.newRunID(nowMs: WallClock.nowMs(), using: &random), stepID: "main", attempt: attempt,
                   kind: "noop", timeout: .seconds(5), enqueuedAtUs: WallClock.nowUs())
    }

    @Test func deliveryPutsTheEntryUnderItsConsumerAndOnlyTheOwnerRenews() async throws {
        let env = try await TestEnvironment.make()
        let redis = env.redis()
        let queue = env.queue
        try await queue.prepare(kinds: ["noop"], on: redis)
        try await queue.enqueue([job(env)], on: redis)
        let deliveries = try await queue.read(kinds: ["noop"], consumer: "alice", count: 10, block: .milliseconds(100), on: redis)
        #expect(deliveries.count == 1)
        let id = try #require(deliveries.first?.id)

        // The lease exists the moment the entry is delivered; two seconds of silence are set,
        // not slept through.
        #expect(try await queue.expired(kind: "noop", minIdle: .zero, count: 10, on: redis).map(\.consumer) == ["alice"])
        try await env.setIdle(kind: "noop", id: id, consumer: "alice", .seconds(2))
        let pending = try await queue.expired(kind: "noop", minIdle: .zero, count: 10, on: redis)
        #expect(pending.map(\.consumer) == ["alice"])
        #expect(pending[0].idleMs >= 2_000)

        // Another consumer cannot renew it, and trying does not reset its idle time.
        #expect(try await queue.renew(kind: "noop", consumer: "mallory", ids: [id], on: redis).isEmpty)
        #expect(try await queue.expired(kind: "noop", minIdle: .milliseconds(1_900), count: 10, on: redis).count == 1)

        // The owner's renewal resets it: its idle time starts again from zero (compared with what it
        // was, not with a fixed bound, so that a stalled test process cannot make it look otherwise).
        let before = try await queue.expired(kind: "noop", minIdle: .zero, count: 10, on: redis)
        #expect(try await queue.renew(kind: "noop", consumer: "alice", ids: [id], on: redis) == [id])
        let after = try await queue.expired(kind: "noop", minIdle: .zero, count: 10, on: redis)
        #expect(after.count == 1 && before.count == 1 && after[0].idleMs < before[0].idleMs, "idle \(before.map(\.idleMs)) → \(after.map(\.idleMs))")
    }

    @Test func anExpiredLeaseIsClaimedAtomicallyAndTheOldOwnerLosesIt() async throws {
        let env = try await TestEnvironment.make()
        let redis = env.redis()
        let queue = env.queue
        try await queue.prepare(kinds: ["noop"], on: redis)
        let original = job(env)
        try await queue.enqueue([original], on: redis)
        let id = try #require(try await queue.read(kinds: ["noop"], consumer: "ghost", count: 1, block: .milliseconds(100), on: redis).first?.id)

        // Not expired yet: a claim with the lease as minimum idle time takes nothing.
        #expect(try await queue.expired(kind: "noop", minIdle: .seconds(3), count: 10, on: redis).isEmpty)
        #expect(try await queue.claim(kind: "noop", ids: [id], minIdle: .seconds(3), consumer: "reaper", on: redis).isEmpty)
        // The ghost stays silent past its 3 s lease (set, not slept through).
        try await env.setIdle(kind: "noop", id: id, consumer: "ghost", .milliseconds(3_100))
        let expired = try await queue.expired(kind: "noop", minIdle: .seconds(3), count: 10, on: redis)
        #expect(expired.map(\.id) == [id])
        let claimed = try await queue.claim(kind: "noop", ids: [id], minIdle: .seconds(3), consumer: "reaper", on: redis)
        #expect(try Job(fields: try #require(claimed.first).fields) == original)
        #expect(try await queue.renew(kind: "noop", consumer: "ghost", ids: [id], on: redis).isEmpty)
    }

    @Test func dueRetriesMoveAtomicallyAndFutureOnesWait() async throws {
        let env = try await TestEnvironment.make()
        let redis = env.redis()
        let queue = env.queue
        try await queue.prepare(kinds: ["noop"], on: redis)
        let due = job(env, attempt: 2)
        let later = job(env, attempt: 3)
        let nowMs = WallClock.nowMs()
        try await DelayedRetries(keys: env.keys).schedule([(due, nowMs - 10), (later, nowMs + 60_000)], on: redis)

        let moved = try await DelayedRetries(keys: env.keys).moveDue(nowUs: WallClock.nowUs(), on: redis)
        #expect(moved.map(\.runID) == [due.runID])
        #expect(try await redis.command(["ZCARD", env.keys.delayed]).integer == 1)
        let delivered = try await queue.read(kinds: ["noop"], consumer: "w", count: 10, block: .milliseconds(100), on: redis)
        let job = try Job(fields: try #require(delivered.first).fields)
        #expect(job.runID == due.runID && job.attempt == 2)
        // The enqueue time is restamped when the retry is released, so pickup latency is honest.
        #expect(job.enqueuedAtUs > due.enqueuedAtUs)
        #expect(try await DelayedRetries(keys: env.keys).moveDue(nowUs: WallClock.nowUs(), on: redis).isEmpty)
    }

    /// Acknowledged entries are trimmed behind the oldest pending one, never one still leased
    /// or waiting; once nothing is pending, everything delivered goes.
    @Test func acknowledgedEntriesAreTrimmedBehindTheOldestLeaseAndNothingElse() async throws {
        let env = try await TestEnvironment.make()
        let redis = env.redis()
        let queue = env.queue
        try await queue.prepare(kinds: ["noop"], on: redis)
        let jobs = (0..<5).map { _ in job(env) }
        try await queue.enqueue(jobs, on: redis)
        let taken = try await queue.read(kinds: ["noop"], consumer: "alice", count: 3, block: .milliseconds(100), on: redis)
        #expect(taken.count == 3)
        func length() async throws -> Int64 { try await redis.command(["XLEN", env.keys.stream("noop")]).integer ?? -1 }
        func ack(_ delivery: Delivery) async throws {
            try await queue.complete([(kind: "noop", id: delivery.id, event: [("result", "r")])], on: redis)
        }
        // The first and the third finish; the second is still leased: only the first can go.
        try await ack(taken[0])
        try await ack(taken[2])
        #expect(try await length() == 4)
        #expect(try await queue.depth(kind: "noop", on: redis) == (3, 1))
        let leased = try await queue.expired(kind: "noop", minIdle: .zero, count: 10, on: redis)
        #expect(leased.map(\.id) == [taken[1].id])
        // The second finishes: everything delivered goes, the two waiting stay and are read next.
        try await ack(taken[1])
        #expect(try await length() == 2)
        #expect(try await queue.depth(kind: "noop", on: redis) == (2, 0))
        let rest = try await queue.read(kinds: ["noop"], consumer: "bob", count: 10, block: .milliseconds(100), on: redis)
        #expect(rest.map { try? Job(fields: $0.fields).key } == jobs[3...].map(\.key))
        for delivery in rest { try await ack(delivery) }
        #expect(try await length() == 0)
        #expect(try await queue.depth(kind: "noop", on: redis) == (0, 0))
        // The events went out with the acks, and the dispatcher's acks trim them the same way.
        let events = try await ResultEvents(keys: env.keys).read(consumer: "d1", count: 10, block: .milliseconds(100), on: redis)
        #expect(events.count == 5)
        try await ResultEvents(keys: env.keys).acknowledge(events.prefix(2).map(\.id), on: redis)
        #expect(try await redis.command(["XLEN", env.keys.events]).integer == 3)
        try await ResultEvents(keys: env.keys).acknowledge(events.dropFirst(2).map(\.id), on: redis)
        #expect(try await redis.command(["XLEN", env.keys.events]).integer == 0)
    }

    /// Rolling upgrades: a kind's jobs go in the compact format only while every live worker of the
    /// kind says it reads it. A worker of an earlier release (no `jobs` in its heartbeat) keeps them
    /// in the first format; a heartbeat older than its lease does not count; no live worker at all
    /// means the first format (the next to start may be old). Each kind is decided on its own.
    @Test func jobsAreWrittenCompactOnlyWhileEveryLiveWorkerOfTheKindReadsThem() async throws {
        let env = try await TestEnvironment.make()
        let redis = env.redis()
        try await env.queue.prepare(kinds: ["noop", "build"], on: redis)
        func heartbeat(_ id: String, kinds: [String], jobs: Int?, seenAgoMs: Int64 = 0) async throws {
            var fields: [String: JSONValue] = [
                "kinds": .array(kinds.map(JSONValue.string)), "lease_ms": .number(30_000),
                "seen_ms": .number(Double(WallClock.nowMs() - seenAgoMs)),
            ]
            if let jobs { fields["jobs"] = .number(Double(jobs)) }
            try await redis.command(["HSET", env.keys.workers, id, JSONValue.object(fields).jsonText])
        }
        /// Enqueues one job of each kind through a new queue (its formats are read afresh)
        /// and returns, by kind, the field names the worker is handed.
        func written(_ kinds: [String]) async throws -> [String: [String]] {
            let jobs = kinds.map { kind -> Job in
                var job = job(env)
                job.kind = kind
                return job
            }
            try await WorkQueue(keys: env.keys).enqueue(jobs, on: redis)
            let delivered = try await env.queue.read(kinds: kinds, consumer: "t", count: 10, block: .milliseconds(100), on: redis)
            var out: [String: [String]] = [:]
            for delivery in delivered {
                let job = try Job(fields: delivery.fields)
                #expect(jobs.contains(job))
                out[delivery.kind] = delivery.fields.map(\.0)
            }
            return out
        }
        let first = ["v", "run", "step", "attempt", "kind", "timeout_ms", "with", "enq"], compact = ["job", "with"]

        #expect(try await written(["noop"]) == ["noop": first])
        try await heartbeat("new-1", kinds: ["noop", "build"], jobs: 2)
        #expect(try await written(["noop", "build"]) == ["noop": compact, "build": compact])
        try await heartbeat("old-1", kinds: ["build"], jobs: nil)
        #expect(try await written(["noop", "build"]) == ["noop": compact, "build": first])
        try await heartbeat("old-1", kinds: ["build"], jobs: nil, seenAgoMs: 60_000)
        #expect(try await written(["build"]) == ["build": compact])
        try await heartbeat("newer-1", kinds: ["noop"], jobs: 3)
        #expect(try await written(["noop"]) == ["noop": compact])
    }

    /// Compact jobs through the delayed set and the cancel path: the mover restamps the enqueue
    /// time (the header's last word), and withdrawal finds waiting and delayed ones by attempt.
    @Test func compactJobsAreMovedWhenDueAndWithdrawnWhenCanceled() async throws {
        let env = try await TestEnvironment.make()
        let redis = env.redis()
        try await env.queue.prepare(kinds: ["noop"], on: redis)
        try await redis.command([
            "HSET", env.keys.workers, "new-1", #"{"kinds":["noop"],"lease_ms":30000,"seen_ms":\#(WallClock.nowMs()),"jobs":2}"#,
        ])
        let queue = WorkQueue(keys: env.keys)
        let due = job(env, attempt: 2), later = job(env, attempt: 3), waiting = job(env)
        let nowMs = WallClock.nowMs()
        try await DelayedRetries(keys: env.keys).schedule([(due, nowMs - 10), (later, nowMs + 60_000)], on: redis)
        let members = try await redis.command(["ZRANGE", env.keys.delayed, "0", "-1"]).array?.compactMap(\.string) ?? []
        #expect(members.count == 2 && members.allSatisfy { $0.contains(#""f":["job","#) })
        #expect(try await DelayedRetries(keys: env.keys).moveDue(nowUs: WallClock.nowUs(), on: redis).map(\.key) == [due.key])
        let delivered = try #require(try await queue.read(kinds: ["noop"], consumer: "w", count: 10, block: .milliseconds(100), on: redis).first)
        #expect(delivered.fields.map(\.0) == ["job", "with"])
        let moved = try Job(fields: delivered.fields)
        #expect(moved.key == due.key && moved.attempt == 2 && moved.enqueuedAtUs > due.enqueuedAtUs)

        try await queue.enqueue([waiting], on: redis)
        let names = Set([later, waiting].map { CancelList.member(AttemptKey(step: $0.key, attempt: $0.attempt)) })
        let withdrawn = try await queue.withdraw(names, kinds: ["noop"], on: redis)
        #expect(withdrawn.map(\.job).sorted { $0.attempt < $1.attempt } == [waiting, later])
        #expect(try await redis.command(["ZCARD", env.keys.delayed]).integer == 0)
        #expect(try await queue.read(kinds: ["noop"], consumer: "w", count: 10, block: .milliseconds(100), on: redis).isEmpty)
    }

    /// A busy worker acknowledges without trimming most of the time; the entries it leaves go with
    /// a later trim, and nothing waiting goes with them.
    @Test func acknowledgingWithoutTrimmingLeavesTheEntriesForALaterTrim() async throws {
        let env = try await TestEnvironment.make()
        let redis = env.redis()
        let queue = env.queue
        try await queue.prepare(kinds: ["noop"], on: redis)
        try await queue.enqueue((0..<4).map { _ in job(env) }, on: redis)
        let taken = try await queue.read(kinds: ["noop"], consumer: "w", count: 3, block: .milliseconds(100), on: redis)
        try await queue.complete(taken.map { (kind: "noop", id: $0.id, event: [("result", "r")]) }, trimming: [], on: redis)
        #expect(try await redis.command(["XLEN", env.keys.stream("noop")]).integer == 4)
        #expect(try await queue.depth(kind: "noop", on: redis) == (1, 0))
        try await queue.trim(kinds: ["noop"], on: redis)
        #expect(try await redis.command(["XLEN", env.keys.stream("noop")]).integer == 1)
        #expect(try await queue.read(kinds: ["noop"], consumer: "w", count: 10, block: .milliseconds(100), on: redis).count == 1)
    }

    @Test func aPoisonMessageGoesToTheDeadLetterStreamWithItsReason() async throws {
        let env = try await TestEnvironment.make()
        let redis = env.redis()
        let queue = env.queue
        try await queue.prepare(kinds: ["noop"], on: redis)
        try await redis.command(["XADD", env.keys.stream("noop"), "*", "hello", "world"])
        let delivery = try #require(try await queue.read(kinds: ["noop"], consumer: "w", count: 1, block: .milliseconds(100), on: redis).first)
        try await queue.deadLetter(delivery, reason: "job field 'v' is missing", on: redis)
        let letters = try await queue.deadLetters(kind: "noop", limit: 10, on: redis)
        let fields = Dictionary(try #require(letters.first).fields, uniquingKeysWith: { a, _ in a })
        #expect(fields["reason"] == "job field 'v' is missing")
        #expect(fields["field.hello"] == "world")
        #expect(try await queue.depth(kind: "noop", on: redis) == (0, 0))
    }

    @Test func aWrongPasswordIsRefusedWithoutShowingIt() async throws {
        let env = try await TestEnvironment.make()
        var url = env.redisURL
        url.password = "hunter2-wrong-password"
        #expect(!url.description.contains("hunter2"))
        let redis = RedisConnection(url: url)
        do {
            try await redis.command(["PING"])
            Issue.record("PING succeeded with a wrong password")
        } catch {
            #expect(error.isConnectionFailure)
            #expect(!error.description.contains("hunter2"))
            #expect(!error.description.contains("\n"))
        }
    }

    @Test func aBlockedReadEndsPromptlyWhenItsTaskIsCancelled() async throws {
        let env = try await TestEnvironment.make()
        let redis = RedisConnection(url: env.redisURL, configuration: .init(commandTimeout: .seconds(30)))
        try await env.queue.prepare(kinds: ["noop"], on: redis)
        let started = ContinuousClock.now
        let task = Task {
            try await env.queue.read(kinds: ["noop"], consumer: "w", count: 1, block: .seconds(20), on: redis)
        }
        try await Task.sleep(for: .milliseconds(200))
        task.cancel()
        _ = try? await task.value
        // Well before the 20 s block ends (the bound leaves room for a loaded two-core CI machine).
        #expect(ContinuousClock.now - started < .seconds(5))
        // The connection recovers for the next command.
        #expect(try await redis.command(["PING"]).string == "PONG")
    }

    /// A cancel can land before the blocked command was even sent (a loaded machine):
    /// the socket is shut down with no call in progress, and the next command must
    /// reconnect rather than write to it (a CI run failed with "Broken pipe" here).
    @Test func anInterruptWithNoCallInProgressLeavesTheConnectionUsable() async throws {
        let env = try await TestEnvironment.make()
        let redis = RedisConnection(url: env.redisURL)
        #expect(try await redis.command(["PING"]).string == "PONG")
        redis.interrupt()
        #expect(try await redis.command(["PING"]).string == "PONG")
        redis.interrupt()
        redis.interrupt()
        #expect(try await redis.command(["ECHO", "again"]).string == "again")
    }

    /// What a benchmark does with the namespace it made up: every key of it goes, and nothing
    /// of another namespace, even one its name would match as a glob pattern.
    @Test func removingANamespaceDeletesAllItsKeysAndNoOtherNamespaces() async throws {
        let env = try await TestEnvironment.make()
        let redis = env.redis()
        let globby = WorkQueue(keys: QueueKeys(namespace: env.namespace + "-b*"))
        let matchedByTheGlob = WorkQueue(keys: QueueKeys(namespace: env.namespace + "-bx"))
        for queue in [env.queue, globby, matchedByTheGlob] {
            try await queue.prepare(kinds: ["noop", "build"], on: redis)
            try await queue.enqueue([job(env)], announcing: ["r1"], on: redis)
            try await redis.command(["HSET", queue.keys.workers, "w1", "{}"])
        }
        // More keys than one SCAN step returns.
        for index in 0..<1_500 { try await redis.command(["SET", "{\(globby.keys.namespace)}:extra:\(index)", "x"]) }
        func count(_ queue: WorkQueue) async throws -> Int {
            var cursor = "0", found = 0
            repeat {
                let reply = try await redis.command(["SCAN", cursor, "MATCH", "*", "COUNT", "1000"])
                cursor = reply.array?[0].string ?? "0"
                found += (reply.array?[1].array ?? []).compactMap(\.string).filter { $0.hasPrefix("{\(queue.keys.namespace)}:") }.count
            } while cursor != "0"
            return found
        }
        #expect(try await count(globby) == 1_505)
        try await globby.removeNamespace(on: redis)
        #expect(try await count(globby) == 0)
        #expect(try await count(matchedByTheGlob) == 5)
        #expect(try await count(env.queue) == 5)
    }
}
