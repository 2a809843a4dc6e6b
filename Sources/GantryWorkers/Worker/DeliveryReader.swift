import GantryCore
import GantryPostgres
import GantryRedis
import GantryRuntime
import Logging
import ServiceLifecycle
import Synchronization

/// Takes deliveries of the worker's kinds from Redis (a blocking `XREADGROUP`, one lease per
/// delivery) while slots are free, enters each in the book and hands it to the runner, or
/// settles it without running it: a delivery that is not a valid job is dead-lettered, an
/// attempt canceled while it waited is recorded `canceled`, one Redis lost track of after it
/// was recorded (`recovered`) reports its recorded outcome.
///
/// On graceful shutdown it stops reading (the blocked read is interrupted), takes back what
/// the interrupted read had delivered unseen, and returns; the runner then drains.
struct DeliveryReader: Service {
    let state: WorkerState
    let runner: AttemptRunner

    func run() async throws {
        let state = state
        await state.untilSuccess("prepare the queues") { () throws(RedisError) in
            try await state.queue.prepare(kinds: state.configuration.kinds, on: state.writer)
        }
        state.logger.info("worker started", metadata: [
            "gantry.kinds": "\(state.configuration.kinds.joined(separator: ","))",
            "gantry.concurrency": "\(state.configuration.concurrency)",
            "gantry.lease": "\(DurationParser.format(state.configuration.lease))",
        ])
        await withGracefulShutdownHandler {
            await readLoop()
        } onGracefulShutdown: {
            state.draining.store(true, ordering: .sequentiallyConsistent)
            state.reader.interrupt()
            state.slots.wakeAll()
        }
        // Reading stopped because of a drain (or cancellation): what the cut-off read delivered.
        state.draining.store(true, ordering: .sequentiallyConsistent)
        await adoptOrphans()
    }

    private var isDraining: Bool { state.draining.load(ordering: .sequentiallyConsistent) || Task.isCancelled }

    private func readLoop() async {
        let configuration = state.configuration
        var backoff = Backoff(first: .milliseconds(100))
        while !isDraining {
            // Read in batches: wait for a quarter of the slots unless nothing is running.
            let batch = max(1, configuration.concurrency / 4)
            if state.slots.used > 0 { await state.slots.wait(forFree: batch) }
            if isDraining { break }
            let kinds = state.paused.withLock { paused in configuration.kinds.filter { !paused.contains($0) } }
            // The last read has returned: the queues left out of the next are no longer read.
            let applied = Set(configuration.kinds).subtracting(kinds)
            if state.pauseApplied.withLock({ current in defer { current = applied }; return current != applied }) {
                state.announceSoon.store(true, ordering: .relaxed)
            }
            if kinds.isEmpty {
                // Every queue paused: look again when the watcher may have read a resume.
                try? await Task.sleep(for: ControlWatcher.interval)
                continue
            }
            let read: (deliveries: [Delivery], cancels: (members: [String], latestMs: Int64))
            do {
                // The cancel list comes back with the deliveries, read after them.
                read = try await state.queue.read(
                    kinds: kinds, consumer: configuration.id, count: state.slots.free,
                    block: WorkerState.readBlock, cancelsSinceMs: state.book.cancelsReadUpToMs, on: state.reader
                )
                backoff.succeeded()
            } catch {
                if isDraining { break }
                state.metrics.redisError()
                if backoff.failures == 0 { state.logger.warning("cannot read from Redis; retrying", metadata: ["error": "\(error)"]) }
                await backoff.wait()
                continue
            }
            CancelWatcher.note(read.cancels, state)
            await accept(read.deliveries)
        }
    }

    /// Entries Redis delivered to this worker in the read a drain cut off (the socket is shut
    /// down mid-reply): pending under our name, yet never seen. Taken as any delivery, so the
    /// drain runs them or hands them back as `interrupted` for immediate re-delivery, instead
    /// of leaving them to wait out the lease and show as `lost`.
    private func adoptOrphans() async {
        let configuration = state.configuration
        for kind in configuration.kinds {
            guard let pending = try? await state.queue.expired(
                kind: kind, minIdle: .zero, count: max(100, 4 * configuration.concurrency), consumer: configuration.id, on: state.writer
            ) else { continue }
            let held = state.book.deliveryIDs
            let orphans = pending.map(\.id).filter { !held.contains($0) }
            guard !orphans.isEmpty,
                  let deliveries = try? await state.queue.claim(kind: kind, ids: orphans, minIdle: .zero, consumer: configuration.id, on: state.writer)
            else { continue }
            state.logger.info("took back deliveries the drain cut off", metadata: ["gantry.kind": "\(kind)", "gantry.count": "\(deliveries.count)"])
            // As with any read: the cancel list as of after the deliveries were taken.
            if let cancels = try? await state.cancels.since(ms: state.book.cancelsReadUpToMs, on: state.heartbeat) {
                CancelWatcher.note(cancels, state)
            }
            await accept(deliveries)
        }
    }

    /// Starts what can run of one read, in one hand-over to the runner, and settles the rest.
    private func accept(_ deliveries: [Delivery]) async {
        var starts: [AttemptRunner.Start] = []
        starts.reserveCapacity(deliveries.count)
        for delivery in deliveries {
            if let start = await accept(delivery) { starts.append(start) }
        }
        if !starts.isEmpty { runner.start(starts) }
    }

    /// The attempt to run for one delivery, or nil when it is settled without running.
    private func accept(_ delivery: Delivery) async -> AttemptRunner.Start? {
        let state = state
        let job: Job
        do {
            job = try Job(fields: delivery.fields)
            guard job.kind == delivery.kind else {
                throw JobDecodingError(field: "kind", problem: "is '\(job.kind)' but the job came from the '\(delivery.kind)' queue")
            }
        } catch {
            state.logger.warning("dead-lettered a delivery that is not a valid job", metadata: [
                "gantry.kind": "\(delivery.kind)", "gantry.entry": "\(delivery.id)", "error": "\(error)",
            ])
            await state.untilSuccess("dead-letter \(delivery.id)") { () throws(RedisError) in
                try await state.queue.deadLetter(delivery, reason: "\(error)", on: state.writer)
            }
            return nil
        }
        state.slots.take(1)
        let key = AttemptKey(step: job.key, attempt: job.attempt)
        let member = CancelList.member(key)
        state.book.hold(delivery.id, kind: delivery.kind, attempt: member, startedMs: WallClock.nowMs())
        // The API shows the step running on this worker from the next announcement (within 100 ms).
        state.announceSoon.store(true, ordering: .relaxed)
        if state.book.isCanceled(member) {
            // Canceled while it waited in the queue: record it without running it.
            let nowUs = WallClock.nowUs()
            state.finished.put(FinishedAttempt(kind: delivery.kind, deliveryID: delivery.id, result: AttemptResult(
                key: key, kind: job.baseKind, status: .canceled, worker: state.configuration.id,
                error: "the run was canceled before this attempt started", retryable: false,
                startedAtUs: nowUs, finishedAtUs: nowUs, deliveryID: delivery.id
            )))
            return nil
        }
        if job.recovered, var recorded = await recordedOutcome(of: key) {
            // Redis lost track of an attempt that had already finished: report it, do not run it twice.
            recorded.deliveryID = delivery.id
            state.finished.put(FinishedAttempt(kind: delivery.kind, deliveryID: delivery.id, result: recorded))
            return nil
        }
        let deadline = ContinuousClock.now + job.timeout
        state.control.register(delivery.id, deadline: deadline)
        return AttemptRunner.Start(job: job, kind: delivery.kind, deliveryID: delivery.id, deadline: deadline)
    }

    private func recordedOutcome(of key: AttemptKey) async -> AttemptResult? {
        let state = state
        var found: [AttemptKey: AttemptResult] = [:]
        await state.untilSuccess("read the ledger") { () throws(PostgresError) in
            found = try await state.ledger.current([key], on: state.db)
        }
        return found[key]
    }
}
