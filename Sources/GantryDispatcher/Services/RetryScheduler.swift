import GantryCore
import GantryPostgres
import GantryRedis
import GantryRuntime
import Logging
import ServiceLifecycle

/// Moves due retries from the delayed set into their streams (every 50 ms while none are
/// due, at once again while some were), shows their steps queued again, and prunes cancels
/// older than a day once a minute.
struct RetryScheduler: Service {
    let state: DispatcherState

    func run() async throws {
        let state = state
        let redis = state.redis("schedule")
        let db = state.postgres("schedule")
        let delayed = DelayedRetries(keys: state.configuration.keys)
        var lastPrune = ContinuousClock.now - .seconds(3_600)
        var backoff = Backoff()
        while !DispatcherState.isStopping {
            if ContinuousClock.now - lastPrune > .seconds(60) {
                // Cancels older than a day can no longer match a delivery; workers re-read the rest.
                lastPrune = .now
                try? await CancelList(keys: state.configuration.keys).prune(beforeMs: WallClock.nowMs() - 86_400_000, on: redis)
            }
            do {
                let moved = try await delayed.moveDue(nowUs: WallClock.nowUs(), on: redis)
                if backoff.failures > 0 { state.logger.info("moving due retries again") }
                backoff.succeeded()
                if !moved.isEmpty {
                    // Best effort: the step shows as queued again; correctness does not depend on it.
                    try? await state.store.markQueued(moved, on: db)
                    await state.effector.publishChanges(Array(Set(moved.map(\.runID))), on: redis)
                    continue
                }
            } catch {
                if backoff.failures == 0 { state.logger.warning("cannot move due retries; retrying", metadata: ["error": "\(error)"]) }
                let wait = backoff.failed()
                await DispatcherState.pause(wait)
                continue
            }
            await DispatcherState.pause(.milliseconds(50))
        }
    }
}
