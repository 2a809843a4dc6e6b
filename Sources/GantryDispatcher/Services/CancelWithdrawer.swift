import GantryCore
import GantryPostgres
import GantryRedis
import GantryRuntime
import Logging
import ServiceLifecycle

/// A cancel reaches running attempts through their workers. An attempt still waiting in its
/// stream or in the delayed set has no worker to stop it (none of its kind may be running),
/// and its run would stay `running` until one came. Every `--withdraw-interval` (1 s) this
/// service reads the cancels made since its last pass, takes such attempts out of Redis,
/// records them `canceled` and applies that: the run ends (or goes on to its `finally`
/// steps) at once.
struct CancelWithdrawer: Service {
    let state: DispatcherState

    func run() async throws {
        let state = state
        let redis = state.redis("withdraw")
        let db = state.postgres("withdraw")
        // Cancels of the last hour (what workers remember too), so a restarted replica catches up.
        var since = WallClock.nowMs() - 3_600_000
        var handled: Set<String> = []
        await state.everyPass("withdraw", interval: state.configuration.withdrawInterval) {
            let (members, latest) = try await CancelList(keys: state.configuration.keys).since(ms: since, on: redis)
            let fresh = Set(members).subtracting(handled)
            if !fresh.isEmpty { try await withdraw(fresh, redis: redis, db: db) }
            // The next pass reads from the latest score again (a cancel may still come within that
            // millisecond) and skips what this one read.
            handled = Set(members)
            since = latest
        }
    }

    /// Takes these canceled attempts out of Redis where no worker was given them yet, and
    /// records and applies them as `canceled`.
    func withdraw(_ members: Set<String>, redis: RedisConnection, db: PostgresConnection) async throws {
        let withdrawn = try await state.queue.withdraw(members, kinds: try await state.queue.kinds(on: redis), on: redis)
        guard !withdrawn.isEmpty else { return }
        try await state.settleCanceled(withdrawn.map { ($0.job, $0.entryID ?? "delayed") }, db: db, redis: redis)
        state.logger.info("withdrew canceled attempts no worker had taken", metadata: ["gantry.count": "\(withdrawn.count)"])
    }
}
