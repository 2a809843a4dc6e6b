import GantryCore
import GantryRuntime
import Logging
import ServiceLifecycle
import Synchronization

/// Runs the attempts the reader hands over, each in a child task of one discarding group,
/// and stops those past their deadline (every 25 ms). A finished attempt goes to the
/// recorder's mailbox.
///
/// On graceful shutdown (after the reader stopped) it drains: running attempts get the
/// worker's `drainGrace` to finish, the rest are stopped and recorded `interrupted` (the
/// dispatcher re-delivers them at once); once every attempt has returned it closes the
/// mailbox, so that the recorder ends when the last outcome is recorded.
struct AttemptRunner: Service {
    /// One attempt to run.
    struct Start: Sendable {
        let job: Job
        /// The queue kind it came from (`build@production`).
        let kind: String
        let deliveryID: String
        let deadline: ContinuousClock.Instant
    }

    let state: WorkerState
    private let execution: AttemptExecution
    private let starts: AsyncStream<[Start]>
    private let handOver: AsyncStream<[Start]>.Continuation

    init(state: WorkerState) {
        self.state = state
        self.execution = AttemptExecution(state: state)
        (starts, handOver) = AsyncStream.makeStream(of: [Start].self)
    }

    /// Hands attempts over to run (the reader, once per read).
    func start(_ batch: [Start]) {
        handOver.yield(batch)
    }

    func run() async throws {
        let state = state
        let execution = execution
        // A discarding group: finished executions free their memory at once instead of
        // waiting in the group for a `next()` that nobody calls.
        await withDiscardingTaskGroup { group in
            group.addTask { await supervise() }
            await withGracefulShutdownHandler {
                for await batch in starts {
                    let nowUs = WallClock.nowUs()
                    for start in batch {
                        state.metrics.started(queue: start.kind, enqueuedAtUs: start.job.enqueuedAtUs, nowUs: nowUs)
                        group.addTask {
                            let result = await execution.execute(start)
                            _ = state.control.finish(start.deliveryID)  // when the executor never ran (a missing secret)
                            state.finished.put(FinishedAttempt(kind: start.kind, deliveryID: start.deliveryID, result: result))
                        }
                    }
                }
            } onGracefulShutdown: {
                // The reader has stopped: what it handed over is still run (or drained) below.
                handOver.finish()
            }
            await drain()
            state.drained.store(true, ordering: .sequentiallyConsistent)
        }
        state.finished.close()
    }

    /// Stops the attempts past their deadline until none is left to run after a drain.
    private func supervise() async {
        while !Task.isCancelled && !state.drained.load(ordering: .sequentiallyConsistent) {
            state.control.expire(now: .now)
            try? await Task.sleep(for: .milliseconds(25))
        }
    }

    /// Lets running attempts finish within the grace period, then hands the rest back as
    /// `interrupted`, and waits until they have returned.
    private func drain() async {
        let state = state
        let graceEnd = ContinuousClock.now + state.configuration.drainGrace
        if state.control.count > 0 {
            state.logger.info("draining", metadata: [
                "gantry.in_flight": "\(state.control.count)", "gantry.grace": "\(DurationParser.format(state.configuration.drainGrace))",
            ])
        }
        while state.control.count > 0 && ContinuousClock.now < graceEnd && !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if state.control.count > 0 {
            state.logger.info("grace period over; handing back unfinished attempts", metadata: ["gantry.count": "\(state.control.count)"])
            state.control.stopAll(.drain)
        }
        while state.control.count > 0 {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }
}
