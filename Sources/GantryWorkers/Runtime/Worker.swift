import Foundation
import GantryCore
import GantryPostgres
import GantryRedis
import GantryRuntime
import Logging
import ServiceLifecycle
import Synchronization

/// A worker process: takes attempts of its kinds from Redis, runs them, records
/// each outcome in Postgres and only then acknowledges it.
///
/// Four loops share the work: the reader (blocking `XREADGROUP`, one lease per
/// delivery), the executions (one child task each, stopped by timeout, lost
/// lease or drain), the recorder (group commit of outcomes, then one pipelined
/// `MULTI` of events and acks) and the heartbeat (lease renewal every third of
/// the lease, and the worker's entry in the fleet hash).
///
/// Graceful shutdown (SIGTERM) drains: reading stops, in-flight attempts get
/// `drainGrace` to finish, the rest are recorded `interrupted` (re-delivered at
/// once by the dispatcher), every record is flushed, and `run()` returns.
public struct Worker: Service {
    public let configuration: WorkerConfiguration
    private let registry: ExecutorRegistry
    private let logger: Logger

    public init(configuration: WorkerConfiguration, registry: ExecutorRegistry, logger: Logger) {
        self.configuration = configuration
        self.registry = registry
        var logger = logger
        logger[metadataKey: "gantry.worker"] = "\(configuration.id)"
        self.logger = logger
    }

    public func run() async throws {
        for kind in configuration.kinds where registry.executor(for: Identifiers.baseKind(kind)) == nil {
            throw WorkerError("no executor for kind '\(kind)'; known kinds: \(registry.kinds.joined(separator: ", "))")
        }
        let blockFor = Duration.seconds(2)
        let session = Session(
            configuration: configuration, registry: registry, logger: logger,
            reader: RedisConnection(url: configuration.redis, configuration: .init(
                commandTimeout: blockFor + .seconds(5), clientName: "gantry-worker-\(configuration.id)-read")),
            writer: RedisConnection(url: configuration.redis, configuration: .init(
                clientName: "gantry-worker-\(configuration.id)")),
            heartbeat: RedisConnection(url: configuration.redis, configuration: .init(
                commandTimeout: max(.seconds(1), configuration.lease / 3), clientName: "gantry-worker-\(configuration.id)-lease")),
            db: PostgresConnection(url: configuration.database, applicationName: "gantry-worker \(configuration.id)")
        )
        await session.run(blockFor: blockFor)
    }
}

/// A one-line error about how the worker was started.
public struct WorkerError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// A delivery the worker holds until its outcome is acknowledged.
private struct Held: Sendable {
    let kind: String
    /// The attempt's name in the cancel list (`run/step/attempt`).
    let attempt: String
    /// When this worker took it (shown as the step's start while it runs).
    var startedMs: Int64 = 0
    /// The heartbeat found the lease gone: the outcome can only be recorded stale.
    var leaseLost = false
    /// The outcome is recorded and its acknowledgement is on its way.
    var acking = false
}

/// A running attempt's log on its way to Redis; `end` is set when the attempt ended.
struct LiveLog: Sendable {
    let key: AttemptKey
    let log: StepLog
    var end: String?
}

/// One finished attempt on its way to the ledger.
private struct Finished: Sendable {
    let kind: String
    let deliveryID: String
    var result: AttemptResult
}

/// The state of one running worker.
private final class Session: Sendable {
    let configuration: WorkerConfiguration
    let registry: ExecutorRegistry
    let logger: Logger
    let reader: RedisConnection
    let writer: RedisConnection
    /// Lease renewals have a connection of their own: a slow acknowledgement must
    /// never hold up the renewals that keep every other delivery alive.
    let heartbeat: RedisConnection
    let db: PostgresConnection
    let queue: WorkQueue
    let ledger = AttemptLedger()
    let control = ExecutionControl()
    let slots: Slots
    let mailbox = Mailbox<Finished>()
    /// Deliveries held and not yet acknowledged.
    let book = Mutex<[String: Held]>([:])
    /// Logs of running attempts (and of finished ones until their last lines are shipped), by delivery.
    let liveLogs = Mutex<[String: LiveLog]>([:])
    /// Attempts canceled by users, as the cancel watcher or the last read of deliveries saw them, with when they were last seen.
    let canceled = Mutex<[String: ContinuousClock.Instant]>([:])
    /// The latest score read from the cancel list; the next read starts there.
    private let cancelsReadUpTo = Mutex<Int64>(0)
    /// When this worker last trimmed its kinds' streams, and the kinds it acknowledged since.
    private let trims = Mutex<(last: ContinuousClock.Instant, untrimmed: Set<String>)>((.now, []))
    /// How often a busy worker trims acknowledged entries from its streams (WorkQueue.complete).
    static let trimInterval = Duration.milliseconds(250)
    let draining = Atomic<Bool>(false)
    /// Set when the worker took new attempts; the log shipper then announces them.
    let announceSoon = Atomic<Bool>(false)
    let stopped = Atomic<Bool>(false)
    let startedMs = WallClock.nowMs()

    init(configuration: WorkerConfiguration, registry: ExecutorRegistry, logger: Logger,
         reader: RedisConnection, writer: RedisConnection, heartbeat: RedisConnection, db: PostgresConnection) {
        self.configuration = configuration
        self.registry = registry
        self.logger = logger
        self.reader = reader
        self.writer = writer
        self.heartbeat = heartbeat
        self.db = db
        self.queue = WorkQueue(keys: configuration.keys)
        self.slots = Slots(configuration.concurrency)
    }

    func run(blockFor: Duration) async {
        await untilSuccess("prepare the queues") { () throws(RedisError) in
            try await self.queue.prepare(kinds: self.configuration.kinds, on: self.writer)
        }
        logger.info("worker started", metadata: [
            "gantry.kinds": "\(configuration.kinds.joined(separator: ","))",
            "gantry.concurrency": "\(configuration.concurrency)",
            "gantry.lease": "\(DurationParser.format(configuration.lease))",
        ])
        // A discarding group: finished executions free their memory at once instead of
        // waiting in the group for a `next()` that nobody calls.
        await withDiscardingTaskGroup { group in
            group.addTask { await self.recordLoop() }
            group.addTask { await self.heartbeatLoop() }
            group.addTask { await self.superviseLoop() }
            group.addTask { await self.cancelWatchLoop() }
            group.addTask { await self.logShipLoop() }
            await withGracefulShutdownHandler {
                await self.readLoop(group: &group, blockFor: blockFor)
                await self.adoptOrphans(group: &group)
            } onGracefulShutdown: {
                self.draining.store(true, ordering: .sequentiallyConsistent)
                self.reader.interrupt()
                self.slots.wakeAll()
            }
            await drain()
            mailbox.close()
            // The recorder returns once every outcome is recorded and acknowledged.
            while book.withLock({ !$0.isEmpty }) && !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(20))
            }
            stopped.store(true, ordering: .sequentiallyConsistent)
        }
        _ = try? await writer.command(["HDEL", configuration.keys.workers, configuration.id])
        logger.info("worker stopped")
    }

    // MARK: Reading

    private func readLoop(group: inout DiscardingTaskGroup, blockFor: Duration) async {
        var failures = 0
        while !draining.load(ordering: .sequentiallyConsistent) && !Task.isCancelled {
            // Read in batches: wait for a quarter of the slots unless nothing is running.
            let batch = max(1, configuration.concurrency / 4)
            if slots.used > 0 { await slots.wait(forFree: batch) }
            if draining.load(ordering: .sequentiallyConsistent) { break }
            let deliveries: [Delivery]
            do {
                // The cancel list comes back with the deliveries, read after them.
                let read = try await queue.read(
                    kinds: configuration.kinds, consumer: configuration.id,
                    count: slots.free, block: blockFor, cancelsSinceMs: cancelsReadUpTo.withLock { $0 }, on: reader
                )
                deliveries = read.deliveries
                note(cancels: read.cancels)
                failures = 0
            } catch {
                if draining.load(ordering: .sequentiallyConsistent) || Task.isCancelled { break }
                failures += 1
                if failures == 1 { logger.warning("cannot read from Redis; retrying", metadata: ["error": "\(error)"]) }
                try? await Task.sleep(for: .milliseconds(min(2_000, 100 * failures)))
                continue
            }
            for delivery in deliveries {
                await accept(delivery, group: &group)
            }
        }
    }

    /// Entries Redis delivered to this worker in the read a drain cut off (the socket is shut
    /// down mid-reply): pending under our name, yet never seen. Taken as any delivery, so the
    /// drain runs them or hands them back as `interrupted` for immediate re-delivery, instead
    /// of leaving them to wait out the lease and show as `lost`.
    private func adoptOrphans(group: inout DiscardingTaskGroup) async {
        for kind in configuration.kinds {
            guard let pending = try? await queue.expired(
                kind: kind, minIdle: .zero, count: max(100, 4 * configuration.concurrency), consumer: configuration.id, on: writer
            ) else { continue }
            let held = book.withLock { Set($0.keys) }
            let orphans = pending.map(\.id).filter { !held.contains($0) }
            guard !orphans.isEmpty,
                  let deliveries = try? await queue.claim(kind: kind, ids: orphans, minIdle: .zero, consumer: configuration.id, on: writer)
            else { continue }
            logger.info("took back deliveries the drain cut off", metadata: ["gantry.kind": "\(kind)", "gantry.count": "\(deliveries.count)"])
            // As with any read: the cancel list as of after the deliveries were taken.
            try? await readCancels()
            for delivery in deliveries { await accept(delivery, group: &group) }
        }
    }

    /// Starts one delivery, or settles it without running it (invalid, already recorded).
    private func accept(_ delivery: Delivery, group: inout DiscardingTaskGroup) async {
        let job: Job
        do {
            job = try Job(fields: delivery.fields)
            guard job.kind == delivery.kind else {
                throw JobDecodingError(field: "kind", problem: "is '\(job.kind)' but the job came from the '\(delivery.kind)' queue")
            }
        } catch {
            logger.warning("dead-lettered a delivery that is not a valid job", metadata: [
                "gantry.kind": "\(delivery.kind)", "gantry.entry": "\(delivery.id)", "error": "\(error)",
            ])
            await untilSuccess("dead-letter \(delivery.id)") { () throws(RedisError) in
                try await self.queue.deadLetter(delivery, reason: "\(error)", on: self.writer)
            }
            return
        }
        slots.take(1)
        let member = WorkQueue.cancelMember(AttemptKey(step: job.key, attempt: job.attempt))
        book.withLock { $0[delivery.id] = Held(kind: delivery.kind, attempt: member, startedMs: WallClock.nowMs()) }
        // The API shows the step running on this worker from the next announcement (within 200 ms).
        announceSoon.store(true, ordering: .relaxed)
        if canceled.withLock({ $0[member] != nil }) {
            // Canceled while it waited in the queue: record it without running it.
            let nowUs = WallClock.nowUs()
            mailbox.put(Finished(kind: delivery.kind, deliveryID: delivery.id, result: AttemptResult(
                key: AttemptKey(step: job.key, attempt: job.attempt), kind: job.baseKind, status: .canceled,
                worker: configuration.id, error: "the run was canceled before this attempt started", retryable: false,
                startedAtUs: nowUs, finishedAtUs: nowUs, deliveryID: delivery.id
            )))
            return
        }
        if job.recovered, let recorded = await recordedOutcome(of: job) {
            // Redis lost track of an attempt that had already finished: report it, do not run it twice.
            var result = recorded
            result.deliveryID = delivery.id
            mailbox.put(Finished(kind: delivery.kind, deliveryID: delivery.id, result: result))
            return
        }
        let deadline = ContinuousClock.now + job.timeout
        control.register(delivery.id, deadline: deadline)
        group.addTask {
            let result = await self.execute(job, deliveryID: delivery.id, deadline: deadline)
            _ = self.control.finish(delivery.id)  // when the executor never ran (a missing secret)
            self.mailbox.put(Finished(kind: delivery.kind, deliveryID: delivery.id, result: result))
        }
    }

    private func recordedOutcome(of job: Job) async -> AttemptResult? {
        let key = AttemptKey(step: job.key, attempt: job.attempt)
        var found: [AttemptKey: AttemptResult] = [:]
        await untilSuccess("read the ledger") { () throws(PostgresError) in
            found = try await self.ledger.current([key], on: self.db)
        }
        return found[key]
    }

    // MARK: Executing

    private enum Ending: Sendable {
        case finished(Result<StepOutputs, any Error>)
        case stopped(StopReason)
    }

    private func execute(_ job: Job, deliveryID: String, deadline: ContinuousClock.Instant) async -> AttemptResult {
        let startedUs = WallClock.nowUs()
        let inputs = JSONValue.parseObject(job.inputs) ?? [:]
        var bindings = (JSONValue.parseObject(job.bindings) ?? [:]).compactMapValues(\.stringValue)
        // Secrets the inputs name are resolved here, on the worker, and nowhere else.
        var secretValues: [String] = []
        var missingSecrets: [String] = []
        var shortSecrets: [String] = []
        let scope = configuration.secretScope.current
        if job.inputs.contains(utf8: "secrets.") {
            for expression in Expressions.references(in: .object(inputs)) where expression.hasPrefix("secrets.") {
                let name = String(expression.dropFirst("secrets.".count))
                // Another pool's secret is never resolved here, even if this worker was given it.
                if scope.permits(name), let value = configuration.secrets.value(name) {
                    // A value too short to mask would be found (and starred) all over the logs, or
                    // guessed from what is left: refused when the worker sets a minimum.
                    if value.utf8.count < configuration.minSecretLength { shortSecrets.append(name) }
                    bindings[expression] = value
                    secretValues.append(value)
                } else {
                    missingSecrets.append(name)
                }
            }
        }
        let redactor = Redactor(secretValues)
        let log = StepLog(redactor: redactor)
        let attemptKey = AttemptKey(step: job.key, attempt: job.attempt)
        liveLogs.withLock { $0[deliveryID] = LiveLog(key: attemptKey, log: log) }
        let lease = LeaseCheck { [queue, heartbeat, configuration, control] in
            let owned = try await queue.renew(kind: job.kind, consumer: configuration.id, ids: [deliveryID], on: heartbeat)
            guard owned.contains(deliveryID) else {
                control.stop(deliveryID, .leaseLost)
                throw LeaseLost()
            }
        }
        let context = StepContext(
            job: job, inputs: inputs, bindings: bindings, deadline: deadline,
            log: log, scope: scope, workerLogger: logger, lease: lease
        )
        let executor = registry.executor(for: job.baseKind)!
        let ending: Ending
        if !missingSecrets.isEmpty {
            ending = .finished(.failure(StepFailure(
                "secret \(missingSecrets.sorted().joined(separator: ", ")) is not available on worker \(configuration.id): "
                    + "set GANTRY_SECRET_\(missingSecrets.sorted()[0]) or put a file of that name in --secrets-dir"
            )))
        } else if !shortSecrets.isEmpty {
            ending = .finished(.failure(StepFailure(
                "secret \(shortSecrets.sorted().joined(separator: ", ")) is shorter than the worker's --min-secret-length "
                    + "\(configuration.minSecretLength) and could not be redacted safely; use a longer value", retryable: false
            )))
        } else {
            ending = await run(executor, context, deliveryID: deliveryID)
        }
        log.finish()
        var result = AttemptResult(
            key: AttemptKey(step: job.key, attempt: job.attempt), kind: job.baseKind, status: .succeeded,
            worker: configuration.id, logTail: log.excerpt, logSHA256: log.sha256, startedAtUs: startedUs, finishedAtUs: WallClock.nowUs(),
            deliveryID: deliveryID
        )
        switch ending {
        case .finished(.success(let outputs)):
            result.outputs = Self.redacted(.object(outputs), redactor).jsonText
        case .finished(.failure(let failure as StepFailure)):
            result.status = .failed
            result.exitCode = failure.exitCode
            result.retryable = failure.retryable
            // Redacted before it is cut to one line: a cut must never leave half a secret.
            result.error = Session.oneLine(redactor.redact(failure.message))
        case .finished(.failure(is LeaseLost)), .stopped(.leaseLost):
            result.status = .stale
            result.error = "the lease was lost before the attempt finished"
        case .finished(.failure(let error)):
            if Task.isCancelled {
                result.status = .interrupted
                result.error = "the worker was stopped"
            } else {
                result.status = .failed
                result.error = Session.oneLine(redactor.redact("\(job.baseKind): \(error)"))
            }
        case .stopped(.timeout):
            result.status = .timedOut
            result.error = "the attempt ran longer than its timeout of \(DurationParser.format(job.timeout))"
        case .stopped(.drain):
            result.status = .interrupted
            result.error = "the worker was drained before the attempt finished"
        case .stopped(.canceled):
            result.status = .canceled
            result.retryable = false
            result.error = "the run was canceled; the attempt was stopped"
        }
        // Nothing a secret could have reached leaves the worker unredacted.
        result.error = result.error.map(redactor.redact)
        if result.status != .succeeded {
            context.logger.info("attempt ended", metadata: ["gantry.status": "\(result.status.rawValue)", "error": "\(result.error ?? "")"])
        }
        let status = result.status.rawValue
        let silent = log.isEmpty
        liveLogs.withLock { live in
            // A log nothing was written to ships nothing, not even its end: the shipper would only
            // skip it for its last 200 ms (and the shipper's pass over every ended log was 3 % of a
            // worker's CPU under load).
            if silent { live.removeValue(forKey: deliveryID) } else { live[deliveryID]?.end = status }
        }
        return result
    }

    /// Runs the executor in a task of its own that a stop (timeout, lost lease, drain, cancel)
    /// cancels; waits for it to return either way. A stop asked for before it returned decides
    /// how the attempt ends, whatever the executor made of its cancellation.
    private func run(_ executor: any StepExecutor, _ context: StepContext, deliveryID: String) async -> Ending {
        let control = control
        let task = Task {
            let result: Result<StepOutputs, any Error>
            do { result = .success(try await executor.execute(context)) } catch { result = .failure(error) }
            return control.finish(deliveryID).map(Ending.stopped) ?? .finished(result)
        }
        control.attach(deliveryID) { task.cancel() }
        return await withTaskCancellationHandler {
            await task.value
        } onCancel: {
            task.cancel()
        }
    }

    /// `value` with every secret value in its strings (and keys) replaced by `***`.
    private static func redacted(_ value: JSONValue, _ redactor: Redactor) -> JSONValue {
        if redactor.isEmpty { return value }
        switch value {
        case .string(let text): return .string(redactor.redact(text))
        case .array(let items): return .array(items.map { redacted($0, redactor) })
        case .object(let fields):
            var out: [String: JSONValue] = [:]
            for (key, field) in fields { out[redactor.redact(key)] = redacted(field, redactor) }
            return .object(out)
        case .null, .bool, .number: return value
        }
    }

    private static func oneLine(_ text: String) -> String {
        let line = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        return line.count > 500 ? String(line.prefix(500)) + "…" : line
    }

    // MARK: Recording

    private func recordLoop() async {
        while let batch = await mailbox.take(max: configuration.maxBatch) {
            await record(batch)
        }
    }

    /// Commits a batch of outcomes to the ledger, then publishes and acknowledges
    /// them in Redis. Neither step gives up while Postgres or Redis is away: the
    /// heartbeat keeps the leases alive meanwhile.
    private func record(_ batch: [Finished]) async {
        // A delivery whose lease the heartbeat found lost can only be recorded stale.
        let lost = book.withLock { book in Set(batch.filter { book[$0.deliveryID]?.leaseLost == true }.map(\.deliveryID)) }
        let results = batch.map { finished -> AttemptResult in
            var result = finished.result
            if lost.contains(finished.deliveryID) && result.status != .stale {
                result.status = .stale
            }
            return result
        }
        var outcomes: [AttemptKey: AttemptLedger.Outcome] = [:]
        var attempts = 0
        while true {
            do {
                outcomes = try await ledger.record(results, on: db)
                if attempts > 0 { logger.info("Postgres is back; outcomes recorded", metadata: ["gantry.count": "\(results.count)"]) }
                break
            } catch {
                attempts += 1
                if attempts == 1 { logger.warning("cannot record outcomes in Postgres; holding their leases and retrying", metadata: ["error": "\(error)"]) }
                if !error.isConnectionFailure && attempts >= 5 {
                    // Not an outage: give the deliveries up; their leases expire and the reaper retries them.
                    logger.error("giving up recording outcomes; the reaper will retry the attempts", metadata: ["error": "\(error)"])
                    settle(batch.map(\.deliveryID))
                    return
                }
                try? await Task.sleep(for: .milliseconds(min(2_000, 50 * attempts * attempts)))
            }
        }
        var acks: [(kind: String, id: String, event: [(String, String)])] = []
        var dropped: [String] = []
        acks.reserveCapacity(batch.count)
        for (finished, result) in zip(batch, results) {
            switch outcomes[result.key] {
            case .recorded?, .alreadyRecorded?:
                acks.append((finished.kind, finished.deliveryID, result.eventFields))
            case .stale?, nil:
                logger.info("recorded a stale outcome: another owner decided this attempt", metadata: [
                    "gantry.run.id": "\(result.key.step.runID)", "gantry.step.id": "\(result.key.step.stepID)",
                    "gantry.attempt": "\(result.key.attempt)",
                ])
                dropped.append(finished.deliveryID)
            }
        }
        // From here the entries leave the pending list; the heartbeat must not take that for a lost lease.
        book.withLock { book in for ack in acks { book[ack.id]?.acking = true } }
        let trimming = trimsDue(adding: acks.map(\.kind))
        await untilSuccess("acknowledge \(acks.count) deliveries") { () throws(RedisError) in
            try await self.queue.complete(acks, trimming: trimming, on: self.writer)
        }
        settle(acks.map(\.id) + dropped)
    }

    /// Notes these kinds as acknowledged and returns the kinds to trim now: all noted since
    /// the last trim once `trimInterval` has passed, else none.
    private func trimsDue(adding kinds: [String]) -> Set<String> {
        trims.withLock { trims in
            trims.untrimmed.formUnion(kinds)
            guard ContinuousClock.now - trims.last >= Self.trimInterval else { return [] }
            trims.last = .now
            defer { trims.untrimmed = [] }
            return trims.untrimmed
        }
    }

    private func settle(_ ids: [String]) {
        book.withLock { book in for id in ids { book.removeValue(forKey: id) } }
        slots.release(ids.count)
    }

    // MARK: Heartbeat and supervision

    private func heartbeatLoop() async {
        let interval = max(configuration.lease / 3, .milliseconds(100))
        while !stopped.load(ordering: .sequentiallyConsistent) && !Task.isCancelled {
            await renewLeases()
            await announce()
            // What the last busy moments acknowledged and did not trim yet.
            let leftovers = trimsDue(adding: [])
            if !leftovers.isEmpty {
                do { try await queue.trim(kinds: leftovers, on: heartbeat) } catch {
                    trims.withLock { $0.untrimmed.formUnion(leftovers) }
                }
            }
            // Leases must be renewed through a drain, so this loop ends on `stopped`,
            // which it checks often enough for a prompt exit.
            let next = ContinuousClock.now + interval
            while ContinuousClock.now < next && !stopped.load(ordering: .sequentiallyConsistent) {
                try? await Task.sleep(for: min(.milliseconds(100), next - .now))
            }
        }
    }

    private func renewLeases() async {
        let held = book.withLock { book in book.filter { !$0.value.leaseLost && !$0.value.acking } }
        let byKind = Dictionary(grouping: held.keys, by: { held[$0]!.kind })
        for (kind, ids) in byKind {
            do {
                let owned = try await queue.renew(kind: kind, consumer: configuration.id, ids: ids, on: heartbeat)
                // Entries acknowledged while we asked are not lost, just done.
                let lost = book.withLock { book in
                    ids.filter { id in
                        guard !owned.contains(id), let held = book[id], !held.acking else { return false }
                        book[id]?.leaseLost = true
                        return true
                    }
                }
                guard !lost.isEmpty else { continue }
                for id in lost { control.stop(id, .leaseLost) }
                logger.warning("lost the lease on deliveries; stopping them", metadata: ["gantry.count": "\(lost.count)", "gantry.kind": "\(kind)"])
            } catch {
                logger.warning("cannot renew leases; retrying", metadata: ["error": "\(error)"])
            }
        }
    }

    private func announce() async {
        var description = "{"
        description += "\"kinds\":\(JSONValue.array(configuration.kinds.map(JSONValue.string)).jsonText)"
        description += ",\"concurrency\":\(configuration.concurrency)"
        description += ",\"lease_ms\":\(configuration.lease.milliseconds)"
        // The newest job format this worker reads: writers use it once every live worker of a kind does.
        description += ",\"jobs\":\(JobFormat.allCases.max()!.rawValue)"
        description += ",\"pid\":\(getpid())"
        description += ",\"host\":\(JSONValue.string(ProcessInfo.processInfo.hostName).jsonText)"
        description += ",\"started_ms\":\(startedMs)"
        description += ",\"seen_ms\":\(WallClock.nowMs())"
        description += ",\"in_flight\":\(slots.used)"
        description += ",\"draining\":\(draining.load(ordering: .sequentiallyConsistent))"
        // What it runs now (`run/step/attempt` and since when), so that a step shows as running
        // on this worker; at most 1,000, the oldest first.
        let running = book.withLock { book in book.values.filter { !$0.acking }.map { ($0.attempt, $0.startedMs) } }
            .sorted { $0.1 < $1.1 }.prefix(1_000)
        description += ",\"running\":[" + running.map { "[\(JSONValue.string($0.0).jsonText),\($0.1)]" }.joined(separator: ",") + "]"
        description += "}"
        _ = try? await heartbeat.command(["HSET", configuration.keys.workers, configuration.id, description])
    }

    private func superviseLoop() async {
        while !stopped.load(ordering: .sequentiallyConsistent) && !Task.isCancelled {
            control.expire(now: .now)
            try? await Task.sleep(for: .milliseconds(25))
        }
    }

    /// Polls the cancel list and stops the attempts it names. New entries are read
    /// from the latest score seen, so the call stays cheap whatever the job rate.
    private func cancelWatchLoop() async {
        while !stopped.load(ordering: .sequentiallyConsistent) && !Task.isCancelled {
            do { try await readCancels() } catch {
                logger.debug("cannot read the cancel list; retrying", metadata: ["error": "\(error)"])
            }
            // Entries are re-read at the latest score; an hour of them is kept to recognise repeats.
            // Pruned here, twice a second, not on every read of deliveries.
            let now = ContinuousClock.now
            canceled.withLock { seen in seen = seen.filter { now - $0.value < .seconds(3_600) } }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }

    /// Reads what is new in the cancel list and notes it.
    private func readCancels() async throws(RedisError) {
        note(cancels: try await queue.cancels(sinceMs: cancelsReadUpTo.withLock { $0 }, on: heartbeat))
    }

    /// Remembers cancels read from the list and stops the running attempts they name.
    private func note(cancels: (members: [String], latestMs: Int64)) {
        let (members, latest) = cancels
        cancelsReadUpTo.withLock { $0 = max($0, latest) }
        let now = ContinuousClock.now
        let fresh = canceled.withLock { seen in members.filter { seen.updateValue(now, forKey: $0) == nil } }
        if !fresh.isEmpty {
            let names = Set(fresh)
            let hits = book.withLock { book in book.filter { names.contains($0.value.attempt) }.map(\.key) }
            for id in hits { control.stop(id, .canceled) }
        }
    }

    /// Ships step log lines to their live streams every 200 ms, with an end marker when
    /// the attempt has ended. Best effort: the ledger keeps the lasting excerpt.
    private func logShipLoop() async {
        let streams = StepLogStream(keys: configuration.keys)
        while true {
            let done = stopped.load(ordering: .sequentiallyConsistent) || Task.isCancelled
            let logs = liveLogs.withLock { $0 }
            var batches: [(key: AttemptKey, lines: [String], end: String?)] = []
            for (_, live) in logs {
                if live.log.isEmpty { continue }
                let lines = live.log.takeOutbox()
                if !lines.isEmpty || live.end != nil { batches.append((live.key, lines, live.end)) }
            }
            if !batches.isEmpty {
                do {
                    try await streams.append(batches, on: writer)
                } catch {
                    logger.debug("cannot ship step logs; they stay in the ledger excerpt", metadata: ["error": "\(error)"])
                }
            }
            let ended = Set(logs.filter { $0.value.end != nil }.map(\.key))
            if !ended.isEmpty { liveLogs.withLock { live in for id in ended { live.removeValue(forKey: id) } } }
            // New attempts since the last tick: announce them now rather than at the next heartbeat.
            if announceSoon.exchange(false, ordering: .relaxed) { await announce() }
            if done { return }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    /// After reading stops: let in-flight attempts finish within the grace period,
    /// then hand the rest back as `interrupted`, and wait until they have returned.
    private func drain() async {
        let graceEnd = ContinuousClock.now + configuration.drainGrace
        if control.count > 0 {
            logger.info("draining", metadata: ["gantry.in_flight": "\(control.count)", "gantry.grace": "\(DurationParser.format(configuration.drainGrace))"])
        }
        while control.count > 0 && ContinuousClock.now < graceEnd && !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if control.count > 0 {
            logger.info("grace period over; handing back unfinished attempts", metadata: ["gantry.count": "\(control.count)"])
            control.stopAll(.drain)
        }
        while control.count > 0 {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    // MARK: Retrying

    /// Runs `body` until it succeeds; gives up only when the worker is torn down.
    private func untilSuccess<E: Error>(_ what: String, _ body: () async throws(E) -> Void) async {
        await retryUntilSuccess(what, logger: logger, giveUp: {
            Task.isCancelled && self.stopped.load(ordering: .sequentiallyConsistent)
        }, body)
    }
}

extension Error {
    fileprivate var isConnectionFailure: Bool {
        (self as? PostgresError)?.isConnectionFailure ?? false
    }
}
