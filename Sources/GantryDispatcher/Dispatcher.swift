import GantryCore
import GantryPostgres
import GantryRedis
import GantryRuntime
import Logging
import ServiceLifecycle
import Synchronization

/// The dispatcher: it applies attempt outcomes to runs (through the pure
/// `RunMachine`), moves due retries into their streams, reclaims expired leases,
/// fires deadlines, re-enqueues from Postgres what Redis lost, and — with
/// `--listen` — serves the HTTP API.
///
/// It keeps no state between iterations: every decision is taken under the
/// step's row lock in Postgres, so several replicas may run at once.
public struct Dispatcher: Service {
    public let configuration: DispatcherConfiguration
    private let logger: Logger

    public init(configuration: DispatcherConfiguration, logger: Logger) {
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "gantry.dispatcher"] = "\(configuration.id)"
        self.logger = logger
    }

    public func run() async throws {
        let core = DispatcherCore(configuration: configuration, logger: logger)
        guard let api = configuration.api else {
            await core.run()
            return
        }
        let server = APIServer(configuration: api, dispatcher: configuration, effector: core.effector, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await core.run() }
            group.addTask { try await server.run() }
            // An API that fails (its address taken) ends the replica at once: a dispatcher left
            // running without the API it was asked to serve looks healthy and answers nothing.
            do {
                while try await group.next() != nil {}
            } catch {
                group.cancelAll()
                throw error
            }
        }
    }
}

/// The loops of one dispatcher replica, each with its own connections (a blocking
/// read must not hold up the others).
final class DispatcherCore: Sendable {
    let configuration: DispatcherConfiguration
    let logger: Logger
    let queue: WorkQueue
    let store = RunStore()
    let ledger = AttemptLedger()
    let stopping = Atomic<Bool>(false)
    let effector: Effector

    init(configuration: DispatcherConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.queue = WorkQueue(keys: configuration.keys)
        self.effector = Effector(queue: queue, logger: logger)
    }

    private func redis(_ role: String, commandTimeout: Duration = .seconds(10)) -> RedisConnection {
        RedisConnection(url: configuration.redis, configuration: .init(
            commandTimeout: commandTimeout, clientName: "gantry-dispatcher-\(configuration.id)-\(role)"))
    }

    private func postgres(_ role: String) -> PostgresConnection {
        PostgresConnection(url: configuration.database, applicationName: "gantry-dispatcher \(configuration.id) \(role)")
    }

    func run() async {
        let lanes = (0..<configuration.lanes).map { lane in
            (lane: lane, reader: redis(lane == 0 ? "events" : "events-\(lane + 1)", commandTimeout: .seconds(8)))
        }
        logger.info("dispatcher started", metadata: ["gantry.lanes": "\(lanes.count)"])
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                for (lane, reader) in lanes {
                    let role = lane == 0 ? "apply" : "apply-\(lane + 1)"
                    group.addTask { await self.eventLoop(lane: lane, reader: reader, writer: self.redis(role), db: self.postgres(role)) }
                }
                group.addTask { await self.scheduleLoop(redis: self.redis("schedule"), db: self.postgres("schedule")) }
                group.addTask { await self.reapLoop(redis: self.redis("reap"), db: self.postgres("reap")) }
                group.addTask { await self.reconcileLoop(redis: self.redis("reconcile"), db: self.postgres("reconcile")) }
                group.addTask { await self.deadlineLoop(redis: self.redis("deadlines"), db: self.postgres("deadlines")) }
                group.addTask { await self.withdrawLoop(redis: self.redis("withdraw"), db: self.postgres("withdraw")) }
            }
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .sequentiallyConsistent)
            for (_, reader) in lanes { reader.interrupt() }
        }
        logger.info("dispatcher stopped")
    }

    private var isStopping: Bool {
        stopping.load(ordering: .sequentiallyConsistent) || Task.isCancelled
    }

    // MARK: Applying outcomes

    /// The events consumer of a lane: lane 0 keeps the name a replica had before it had lanes,
    /// so the events it held before an upgrade are its own again after it.
    private func eventsConsumer(lane: Int) -> String {
        lane == 0 ? "dispatcher-\(configuration.id)" : "dispatcher-\(configuration.id)#\(lane + 1)"
    }

    /// Events read at once by a lane. An event holds the batch of outcomes one worker recorded
    /// together (tens under load), so a read is about one transaction's worth, and a backlog is
    /// shared between the lanes (and replicas) instead of being taken whole by the first reader.
    static let eventsPerRead = 32

    private func eventLoop(lane: Int, reader: RedisConnection, writer: RedisConnection, db: PostgresConnection) async {
        let consumer = eventsConsumer(lane: lane)
        await untilSuccess("prepare the events stream") { () throws(RedisError) in
            try await self.queue.prepare(kinds: [], on: writer)
        }
        // First the events this lane was given before a restart and never acknowledged.
        var pending = true
        // Lanes look for a crashed replica's events at different times.
        var lastClaim = ContinuousClock.now + .seconds(lane)
        var failures = 0
        while !isStopping {
            do {
                var events = try await queue.readEvents(
                    consumer: consumer, count: Self.eventsPerRead, block: .seconds(2), pending: pending, on: reader
                )
                if pending && events.isEmpty { pending = false }
                if ContinuousClock.now - lastClaim > .seconds(10) {
                    // Events a crashed replica (or a lane a restart did not bring back) was holding.
                    lastClaim = .now
                    events += try await queue.claimStaleEvents(consumer: consumer, minIdle: .seconds(30), count: Self.eventsPerRead, on: writer)
                }
                failures = 0
                guard !events.isEmpty else { continue }
                var results: [AttemptResult] = []
                results.reserveCapacity(events.count)
                for event in events {
                    let (outcomes, malformed) = AttemptResult.outcomes(inEvent: event.fields)
                    results += outcomes
                    if malformed > 0 {
                        logger.warning("ignored an event, or part of one, that is not an attempt outcome", metadata: [
                            "gantry.event": "\(event.id)", "gantry.count": "\(malformed)",
                        ])
                    }
                }
                // An event holds a worker's batch: apply at most eventBatch outcomes per transaction.
                var start = 0
                while start < results.count {
                    let end = min(start + configuration.eventBatch, results.count)
                    await apply(Array(results[start..<end]), writer: writer, db: db)
                    start = end
                }
                await untilSuccess("acknowledge events") { () throws(RedisError) in
                    try await self.queue.acknowledgeEvents(events.map(\.id), on: writer)
                }
                logger.debug("applied outcomes", metadata: [
                    "gantry.consumer": "\(consumer)", "gantry.events": "\(events.count)", "gantry.count": "\(results.count)",
                ])
            } catch {
                if isStopping { break }
                failures += 1
                if failures == 1 { logger.warning("cannot read events; retrying", metadata: ["error": "\(error)"]) }
                try? await Task.sleep(for: .milliseconds(min(2_000, 100 * failures)))
            }
        }
    }

    /// Applies outcomes under row locks, then carries out the resulting commands in Redis.
    /// If the process dies in between, the reconciler finds the step quiet and re-issues them.
    func apply(_ results: [AttemptResult], writer: RedisConnection, db: PostgresConnection) async {
        guard !results.isEmpty else { return }
        var effects = Effects()
        await untilSuccess("apply \(results.count) outcomes") { () throws(PostgresError) in
            effects = try await self.store.apply(results, nowMs: WallClock.nowMs(), on: db)
        }
        await carryOut(effects, on: writer)
    }

    func carryOut(_ effects: Effects, on redis: RedisConnection) async {
        await effector.carryOut(effects, on: redis)
    }

    // MARK: Deadlines

    /// Fires run deadlines and approval timeouts that have passed.
    private func deadlineLoop(redis: RedisConnection, db: PostgresConnection) async {
        await everyPass("deadlines", interval: .seconds(1)) {
            let events = try await self.store.dueDeadlines(namespace: self.configuration.keys.namespace, nowMs: WallClock.nowMs(), on: db)
            guard !events.isEmpty else { return }
            let effects = try await self.store.transition(events, nowMs: WallClock.nowMs(), on: db)
            await self.carryOut(effects, on: redis)
        }
    }

    // MARK: Delayed retries

    private func scheduleLoop(redis: RedisConnection, db: PostgresConnection) async {
        var lastPrune = ContinuousClock.now - .seconds(3_600)
        while !isStopping {
            if ContinuousClock.now - lastPrune > .seconds(60) {
                // Cancels older than a day can no longer match a delivery; workers re-read the rest.
                lastPrune = .now
                try? await queue.pruneCancels(beforeMs: WallClock.nowMs() - 86_400_000, on: redis)
            }
            do {
                let moved = try await queue.moveDue(nowUs: WallClock.nowUs(), on: redis)
                if !moved.isEmpty {
                    // Best effort: the step shows as queued again; correctness does not depend on it.
                    try? await store.markQueued(moved, on: db)
                    await effector.publishChanges(Array(Set(moved.map(\.runID))), on: redis)
                    continue
                }
            } catch {
                logger.warning("cannot move due retries; retrying", metadata: ["error": "\(error)"])
            }
            await pause(.milliseconds(50))
        }
    }

    /// Runs `pass` every `interval` until shutdown; a failed pass is logged and the next one tries again.
    private func everyPass(_ name: String, interval: Duration, _ pass: () async throws -> Void) async {
        while !isStopping {
            do {
                try await pass()
            } catch {
                logger.warning("\(name) pass failed; retrying", metadata: ["error": "\(error)"])
            }
            await pause(interval)
        }
    }

    /// Sleeps, but wakes at once when the process is asked to shut down.
    private func pause(_ duration: Duration) async {
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: duration) }
    }

    // MARK: Reaping expired leases

    private var reaperConsumer: String { "reaper-\(configuration.id)" }

    private func reapLoop(redis: RedisConnection, db: PostgresConnection) async {
        await everyPass("reaper", interval: configuration.reapInterval) {
            try await self.reap(redis: redis, db: db)
        }
    }

    /// One pass: every delivery idle past its holder's lease is taken over; its
    /// attempt is recorded `lost` unless the ledger already has an outcome (the
    /// holder committed and died before acknowledging), and the outcome is applied.
    func reap(redis: RedisConnection, db: PostgresConnection) async throws {
        let leases = try await FleetRegistry(keys: configuration.keys).leases(on: redis)
        let shortest = leases.values.min().map { min($0, configuration.defaultLease) } ?? configuration.defaultLease
        for kind in try await queue.kinds(on: redis) {
            let expired = try await queue.expired(kind: kind, minIdle: shortest, count: 1_000, on: redis)
            // A reaper that died mid-pass left entries under its name: take them over like any other.
            let due = expired.filter { $0.idleMs >= (leases[$0.consumer] ?? configuration.defaultLease).milliseconds }
            guard !due.isEmpty else { continue }
            var claimed: [Delivery] = []
            for (consumer, group) in Dictionary(grouping: due, by: \.consumer) {
                let lease = leases[consumer] ?? configuration.defaultLease
                claimed += try await queue.claim(kind: kind, ids: group.map(\.id), minIdle: lease, consumer: reaperConsumer, on: redis)
            }
            guard !claimed.isEmpty else { continue }
            let holders = Dictionary(due.map { ($0.id, $0.consumer) }, uniquingKeysWith: { a, _ in a })
            try await settleClaimed(claimed, kind: kind, holders: holders, redis: redis, db: db)
        }
    }

    private func settleClaimed(_ claimed: [Delivery], kind: String, holders: [String: String], redis: RedisConnection, db: PostgresConnection) async throws {
        var jobs: [(Delivery, Job)] = []
        for delivery in claimed {
            do {
                jobs.append((delivery, try Job(fields: delivery.fields)))
            } catch {
                try await queue.deadLetter(delivery, reason: "\(error)", on: redis)
            }
        }
        let keys = jobs.map { AttemptKey(step: $0.1.key, attempt: $0.1.attempt) }
        let recorded = try await ledger.current(keys, on: db)
        let nowUs = WallClock.nowUs()
        var lost: [AttemptResult] = []
        var honoured: [AttemptResult] = []
        for (delivery, job) in jobs {
            let key = AttemptKey(step: job.key, attempt: job.attempt)
            if let result = recorded[key] {
                honoured.append(result)
            } else {
                let holder = holders[delivery.id] ?? "unknown"
                lost.append(AttemptResult(
                    key: key, kind: job.baseKind, status: .lost, worker: holder,
                    error: "worker \(holder) went silent for longer than its lease",
                    startedAtUs: job.enqueuedAtUs, finishedAtUs: nowUs, deliveryID: delivery.id
                ))
            }
        }
        let outcomes = try await ledger.record(lost, on: db)
        // A holder that committed between our read and our write wins: use its outcome.
        let raced = lost.filter { if case .stale? = outcomes[$0.key] { true } else { false } }.map(\.key)
        let winners = raced.isEmpty ? [:] : try await ledger.current(raced, on: db)
        let results = honoured + lost.map { winners[$0.key] ?? $0 }
        if !lost.isEmpty {
            logger.warning("reclaimed expired leases", metadata: [
                "gantry.kind": "\(kind)", "gantry.count": "\(lost.count)",
                "gantry.workers": "\(Set(lost.map(\.worker)).sorted().joined(separator: ","))",
            ])
        }
        await apply(results, writer: redis, db: db)
        try await queue.acknowledge(kind: kind, ids: claimed.map(\.id), on: redis)
    }

    // MARK: Withdrawing canceled attempts no worker was given

    /// A cancel reaches running attempts through their workers. An attempt still waiting in
    /// its stream or in the delayed set has no worker to stop it (none of its kind may be
    /// running), and its run would stay `running` until one came. Every `--withdraw-interval` (1 s) this pass reads
    /// the cancels made since the last pass, takes such attempts out of Redis, records them
    /// `canceled` and applies that: the run ends (or goes on to its `finally` steps) at once.
    private func withdrawLoop(redis: RedisConnection, db: PostgresConnection) async {
        // Cancels of the last hour (what workers remember too), so a restarted replica catches up.
        var since = WallClock.nowMs() - 3_600_000
        var handled: Set<String> = []
        await everyPass("withdraw", interval: configuration.withdrawInterval) {
            let (members, latest) = try await self.queue.cancels(sinceMs: since, on: redis)
            let fresh = Set(members).subtracting(handled)
            if !fresh.isEmpty { try await self.withdraw(fresh, redis: redis, db: db) }
            // The next pass reads from the latest score again (a cancel may still come within that
            // millisecond) and skips what this one read.
            handled = Set(members)
            since = latest
        }
    }

    /// Takes these canceled attempts out of Redis where no worker was given them yet, and
    /// records and applies them as `canceled`.
    func withdraw(_ members: Set<String>, redis: RedisConnection, db: PostgresConnection) async throws {
        let withdrawn = try await queue.withdraw(members, kinds: try await queue.kinds(on: redis), on: redis)
        guard !withdrawn.isEmpty else { return }
        try await settleCanceled(withdrawn.map { ($0.job, $0.entryID ?? "delayed") }, db: db, redis: redis)
        logger.info("withdrew canceled attempts no worker had taken", metadata: ["gantry.count": "\(withdrawn.count)"])
    }

    /// Records attempts that never reached a worker as `canceled` by this dispatcher, and applies
    /// them; an attempt someone recorded first keeps that outcome.
    private func settleCanceled(_ jobs: [(job: Job, entry: String)], db: PostgresConnection, redis: RedisConnection) async throws {
        let nowUs = WallClock.nowUs()
        let canceled = jobs.map { job, entry in
            AttemptResult(
                key: AttemptKey(step: job.key, attempt: job.attempt), kind: job.baseKind, status: .canceled,
                worker: eventsConsumer(lane: 0), error: "the run was canceled before this attempt started", retryable: false,
                startedAtUs: nowUs, finishedAtUs: nowUs, deliveryID: entry
            )
        }
        let outcomes = try await ledger.record(canceled, on: db)
        let raced = canceled.filter { if case .stale? = outcomes[$0.key] { true } else { false } }.map(\.key)
        let winners = raced.isEmpty ? [:] : try await ledger.current(raced, on: db)
        await apply(canceled.map { winners[$0.key] ?? $0 }, writer: redis, db: db)
    }

    // MARK: Reconciling Postgres and Redis

    private func reconcileLoop(redis: RedisConnection, db: PostgresConnection) async {
        await everyPass("reconciler", interval: configuration.reconcileInterval) {
            try await self.reconcile(redis: redis, db: db)
        }
    }

    /// One pass: every step that has not changed for a while must have its current
    /// attempt somewhere in Redis (stream, pending list or delayed set) or an
    /// outcome in the ledger. Steps with neither are re-enqueued, marked recovered
    /// so the worker checks the ledger before running them.
    func reconcile(redis: RedisConnection, db: PostgresConnection) async throws {
        let quiet = try await store.quietSteps(namespace: configuration.keys.namespace, quietFor: configuration.reconcileAfter, limit: 5_000, on: db)
        guard !quiet.isEmpty else { return }
        var present = try await queue.attemptsDelayed(on: redis)
        for kind in Set(quiet.map(\.kind)) {
            present.formUnion(try await queue.attemptsPresent(kind: kind, on: redis))
        }
        let missing = quiet.filter { !present.contains(AttemptKey(step: $0.key, attempt: $0.state.attempt)) }
        if !missing.isEmpty {
            let keys = missing.map { AttemptKey(step: $0.key, attempt: $0.state.attempt) }
            let recorded = try await ledger.current(keys, on: db)
            // Finished while Redis lost the event: apply the recorded outcome.
            await apply(Array(recorded.values), writer: redis, db: db)
            let nowUs = WallClock.nowUs()
            let nowMs = nowUs / 1_000
            let unrecorded = zip(missing, keys).filter { recorded[$0.1] == nil }
            // Canceled attempts are not put back in the queue: they are recorded canceled (e.g. a
            // dispatcher withdrew one and stopped before it recorded it).
            let canceled = try await queue.canceled(among: unrecorded.map { WorkQueue.cancelMember($0.1) }, on: redis)
            var enqueue: [Job] = []
            var delayed: [(job: Job, dueAtMs: Int64)] = []
            var withdrawn: [(job: Job, entry: String)] = []
            for (step, key) in unrecorded {
                let job = step.job(attempt: step.state.attempt, nowUs: nowUs, recovered: true)
                if canceled.contains(WorkQueue.cancelMember(key)) {
                    withdrawn.append((job, "reconciled"))
                    continue
                }
                if step.state.status == .retrying, let due = step.state.dueAtMs, due > nowMs {
                    delayed.append((job, due))
                } else {
                    enqueue.append(job)
                }
            }
            try await queue.enqueue(enqueue, on: redis)
            try await queue.schedule(delayed, on: redis)
            if !withdrawn.isEmpty { try await settleCanceled(withdrawn, db: db, redis: redis) }
            // Only a re-enqueue means Redis lost work. An outcome applied here is usually one whose
            // event is still queued behind a backlog (a large fan-out), and a withdrawn attempt one
            // a replica stopped before recording: worth a line, not a warning.
            if !enqueue.isEmpty || !delayed.isEmpty {
                logger.warning("re-enqueued steps Redis had lost", metadata: [
                    "gantry.requeued": "\(enqueue.count + delayed.count)", "gantry.applied": "\(recorded.count)",
                    "gantry.canceled": "\(withdrawn.count)",
                ])
            } else if !recorded.isEmpty || !withdrawn.isEmpty {
                logger.info("reconciled quiet steps from the ledger", metadata: [
                    "gantry.applied": "\(recorded.count)", "gantry.canceled": "\(withdrawn.count)",
                ])
            }
        }
        try await store.touch(quiet.map(\.key), on: db)
    }

    // MARK: Retrying

    private func untilSuccess<E: Error>(_ what: String, _ body: () async throws(E) -> Void) async {
        await retryUntilSuccess(what, logger: logger, body)
    }
}
