import GantryCore
import GantryPostgres
import GantryRedis
import GantryRuntime
import Logging
import ServiceLifecycle

/// Re-enqueues from Postgres what Redis lost, every `--reconcile-interval`: every step that
/// has not changed for `--reconcile-after` must have its current attempt somewhere in Redis
/// (stream, pending list or delayed set) or an outcome in the ledger. Steps with neither are
/// enqueued again, marked recovered so that the worker checks the ledger before it runs them.
struct Reconciler: Service {
    let state: DispatcherState

    func run() async throws {
        let redis = state.redis("reconcile")
        let db = state.postgres("reconcile")
        await state.everyPass("reconciler", interval: state.configuration.reconcileInterval) {
            try await reconcile(redis: redis, db: db)
        }
    }

    /// One pass.
    func reconcile(redis: RedisConnection, db: PostgresConnection) async throws {
        let (configuration, queue, store, ledger) = (state.configuration, state.queue, state.store, state.ledger)
        let quiet = try await store.quietSteps(namespace: configuration.keys.namespace, quietFor: configuration.reconcileAfter, limit: 5_000, on: db)
        guard !quiet.isEmpty else { return }
        var present = try await DelayedRetries(keys: configuration.keys).attempts(on: redis)
        for kind in Set(quiet.map(\.kind)) {
            present.formUnion(try await queue.attemptsPresent(kind: kind, on: redis))
        }
        let missing = quiet.filter { !present.contains(AttemptKey(step: $0.key, attempt: $0.state.attempt)) }
        if !missing.isEmpty {
            let keys = missing.map { AttemptKey(step: $0.key, attempt: $0.state.attempt) }
            let recorded = try await ledger.current(keys, on: db)
            // Finished while Redis lost the event: apply the recorded outcome.
            await state.apply(Array(recorded.values), writer: redis, db: db)
            let nowUs = WallClock.nowUs()
            let nowMs = nowUs / 1_000
            let unrecorded = zip(missing, keys).filter { recorded[$0.1] == nil }
            // Canceled attempts are not put back in the queue: they are recorded canceled (e.g. a
            // dispatcher withdrew one and stopped before it recorded it).
            let canceled = try await CancelList(keys: configuration.keys).present(among: unrecorded.map { CancelList.member($0.1) }, on: redis)
            var enqueue: [Job] = []
            var delayed: [(job: Job, dueAtMs: Int64)] = []
            var withdrawn: [(job: Job, entry: String)] = []
            for (step, key) in unrecorded {
                let job = step.job(attempt: step.state.attempt, nowUs: nowUs, recovered: true)
                if canceled.contains(CancelList.member(key)) {
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
            try await state.effector.delayed.schedule(delayed, on: redis)
            if !withdrawn.isEmpty { try await state.settleCanceled(withdrawn, db: db, redis: redis) }
            // Only a re-enqueue means Redis lost work. An outcome applied here is usually one whose
            // event is still queued behind a backlog (a large fan-out), and a withdrawn attempt one
            // a replica stopped before recording: worth a line, not a warning.
            if !enqueue.isEmpty || !delayed.isEmpty {
                state.logger.warning("re-enqueued steps Redis had lost", metadata: [
                    "gantry.requeued": "\(enqueue.count + delayed.count)", "gantry.applied": "\(recorded.count)",
                    "gantry.canceled": "\(withdrawn.count)",
                ])
            } else if !recorded.isEmpty || !withdrawn.isEmpty {
                state.logger.info("reconciled quiet steps from the ledger", metadata: [
                    "gantry.applied": "\(recorded.count)", "gantry.canceled": "\(withdrawn.count)",
                ])
            }
        }
        try await store.touch(quiet.map(\.key), on: db)
    }
}
