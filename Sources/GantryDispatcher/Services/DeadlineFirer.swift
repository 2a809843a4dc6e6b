import GantryCore
import GantryPostgres
import GantryRedis
import GantryRuntime
import Logging
import ServiceLifecycle

/// Fires run deadlines and approval timeouts that have passed, every second.
struct DeadlineFirer: Service {
    let state: DispatcherState

    func run() async throws {
        let state = state
        let redis = state.redis("deadlines")
        let db = state.postgres("deadlines")
        await state.everyPass("deadlines", interval: .seconds(1)) {
            let events = try await state.store.dueDeadlines(namespace: state.configuration.keys.namespace, nowMs: WallClock.nowMs(), on: db)
            guard !events.isEmpty else { return }
            let effects = try await state.store.transition(events, nowMs: WallClock.nowMs(), on: db)
            await state.effector.carryOut(effects, on: redis)
        }
    }
}
