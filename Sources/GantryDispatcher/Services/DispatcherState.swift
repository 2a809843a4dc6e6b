import GantryCore
import GantryPostgres
import GantryRedis
import GantryRuntime
import Logging
import ServiceLifecycle

/// What the services of one dispatcher replica share: its configuration, the stores, and
/// how an outcome is applied. Each service opens connections of its own (a blocking read
/// must not hold up the others); none keeps state between passes, since every decision is
/// taken under the step's row lock in Postgres and several replicas may run at once.
final class DispatcherState: Sendable {
    let configuration: DispatcherConfiguration
    let logger: Logger
    let queue: WorkQueue
    let store = RunStore()
    let ledger = AttemptLedger()
    let effector: Effector

    init(configuration: DispatcherConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.queue = WorkQueue(keys: configuration.keys)
        self.effector = Effector(queue: queue, logger: logger)
    }

    func redis(_ role: String, commandTimeout: Duration = .seconds(10)) -> RedisConnection {
        RedisConnection(url: configuration.redis, configuration: .init(
            commandTimeout: commandTimeout, clientName: "gantry-dispatcher-\(configuration.id)-\(role)"))
    }

    func postgres(_ role: String) -> PostgresConnection {
        PostgresConnection(url: configuration.database, applicationName: "gantry-dispatcher \(configuration.id) \(role)")
    }

    /// The name this replica records outcomes under (lane 0's events consumer).
    var recorderName: String { EventApplier.consumer(lane: 0, replica: configuration.id) }

    /// Applies outcomes under row locks, then carries out the resulting commands in Redis.
    /// If the process dies in between, the reconciler finds the step quiet and re-issues them.
    func apply(_ results: [AttemptResult], writer: RedisConnection, db: PostgresConnection) async {
        guard !results.isEmpty else { return }
        var effects = Effects()
        await untilSuccess("apply \(results.count) outcomes") { () throws(PostgresError) in
            effects = try await self.store.apply(results, nowMs: WallClock.nowMs(), on: db)
        }
        await effector.carryOut(effects, on: writer)
    }

    /// Records attempts that never reached a worker as `canceled` by this dispatcher, and applies
    /// them; an attempt someone recorded first keeps that outcome.
    func settleCanceled(_ jobs: [(job: Job, entry: String)], db: PostgresConnection, redis: RedisConnection) async throws {
        let nowUs = WallClock.nowUs()
        let canceled = jobs.map { job, entry in
            AttemptResult(
                key: AttemptKey(step: job.key, attempt: job.attempt), kind: job.baseKind, status: .canceled,
                worker: recorderName, error: "the run was canceled before this attempt started", retryable: false,
                startedAtUs: nowUs, finishedAtUs: nowUs, deliveryID: entry
            )
        }
        let outcomes = try await ledger.record(canceled, on: db)
        let raced = canceled.filter { if case .stale? = outcomes[$0.key] { true } else { false } }.map(\.key)
        let winners = raced.isEmpty ? [:] : try await ledger.current(raced, on: db)
        await apply(canceled.map { winners[$0.key] ?? $0 }, writer: redis, db: db)
    }

    func untilSuccess<E: Error>(_ what: @autoclosure () -> String, _ body: () async throws(E) -> Void) async {
        await retryUntilSuccess(what(), logger: logger, body)
    }

    /// Runs `pass` every `interval` until a graceful shutdown; a failed pass is logged and the
    /// next one tries again.
    func everyPass(_ name: String, interval: Duration, _ pass: () async throws -> Void) async {
        while !Self.isStopping {
            do {
                try await pass()
            } catch {
                logger.warning("\(name) pass failed; retrying", metadata: ["error": "\(error)"])
            }
            await Self.pause(interval)
        }
    }

    /// Whether the calling service was asked to stop.
    static var isStopping: Bool { Task.isShuttingDownGracefully || Task.isCancelled }

    /// Sleeps, but wakes at once when the calling service is asked to stop.
    static func pause(_ duration: Duration) async {
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: duration) }
    }
}
