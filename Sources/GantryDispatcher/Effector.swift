import GantryCore
import GantryPostgres
import GantryRedis
import GantryRuntime
import Logging

/// Does in Redis what committed run transitions asked for: enqueue, schedule,
/// cancel. If the process dies before it is done, the reconciler finds the steps
/// quiet and enqueues them again; workers honour cancels they see late.
struct Effector: Sendable {
    let queue: WorkQueue
    let logger: Logger
    /// Its own cache of the job formats (see `JobFormatCache`).
    let delayed: DelayedRetries
    let metrics = DispatcherMetrics()

    init(queue: WorkQueue, logger: Logger) {
        self.queue = queue
        self.logger = logger
        self.delayed = DelayedRetries(keys: queue.keys)
    }

    func carryOut(_ effects: Effects, on redis: RedisConnection) async {
        for step in effects.failedSteps {
            metrics.stepFailedForGood(kind: step.kind)
            logger.info("step failed for good", metadata: [
                "gantry.run.id": "\(step.key.runID)", "gantry.step.id": "\(step.key.stepID)",
                "gantry.attempt": "\(step.state.attempt)", "error": "\(step.state.lastError ?? "")",
            ])
        }
        for (_, status) in effects.finishedRuns { metrics.runFinished(status: status) }
        for (runID, status) in effects.finishedRuns where status != "succeeded" {
            logger.info("run finished", metadata: ["gantry.run.id": "\(runID)", "gantry.status": "\(status)"])
        }
        guard !effects.enqueue.isEmpty || !effects.schedule.isEmpty || !effects.cancel.isEmpty else {
            return await publishChanges(effects.changedRuns, on: redis)
        }
        await retryUntilSuccess("enqueue \(effects.enqueue.count) attempts", logger: logger) { () throws(RedisError) in
            // Cancels first: a worker handed one of these attempts must already see it canceled.
            try await CancelList(keys: queue.keys).add(effects.cancel, nowMs: WallClock.nowMs(), on: redis)
            // The changed runs are announced in the same round trip as the jobs.
            try await queue.enqueue(effects.enqueue, announcing: effects.changedRuns, on: redis)
            try await delayed.schedule(effects.schedule, on: redis)
        }
        for job in effects.enqueue { metrics.enqueued(queue: job.kind) }
        for (job, _) in effects.schedule { metrics.retryScheduled(queue: job.kind) }
    }

    /// Tells the API replicas' event streams which runs changed. Best effort: a stream
    /// that misses it re-reads its run within `RunChangeFeed.fallback` anyway.
    func publishChanges(_ runIDs: [String], on redis: RedisConnection) async {
        do {
            try await RunChanges(keys: queue.keys).publish(runIDs, on: redis)
        } catch {
            logger.warning("cannot announce changed runs; event streams will see them within seconds", metadata: ["error": "\(error)"])
        }
    }
}
