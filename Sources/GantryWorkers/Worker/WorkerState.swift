import GantryCore
import GantryPostgres
import GantryRedis
import GantryRuntime
import Logging
import Synchronization

/// What the services of one worker process share: its configuration and connections, the
/// book of held deliveries, the execution slots and stops, and the mailbox of finished
/// attempts on their way to the ledger. Each service holds a reference; none owns it.
final class WorkerState: Sendable {
    let configuration: WorkerConfiguration
    let registry: ExecutorRegistry
    let logger: Logger
    /// Blocking reads of deliveries (`XREADGROUP … BLOCK`), the reader's alone.
    let reader: RedisConnection
    /// Acknowledgements, dead letters, log lines, the fleet entry's removal.
    let writer: RedisConnection
    /// Lease renewals, heartbeats and the cancel list have a connection of their own: a slow
    /// acknowledgement must never hold up the renewals that keep every other delivery alive.
    let heartbeat: RedisConnection
    let db: PostgresConnection
    let queue: WorkQueue
    let cancels: CancelList
    let ledger = AttemptLedger()
    let book = HeldDeliveries()
    let control = ExecutionControl()
    let slots: Slots
    let finished = Mailbox<FinishedAttempt>()
    let liveLogs = LiveLogs()
    /// Set when the reader stops taking deliveries (a drain); the heartbeat shows it.
    let draining = Atomic<Bool>(false)
    /// The worker's queues an operator paused (`ControlWatcher`): the reader leaves them unread.
    let paused = Mutex<Set<String>>([])
    /// What the worker counts and times (swift-metrics).
    let metrics = WorkerMetrics()
    /// The paused queues the reader has stopped reading: no read of them is under way (the
    /// heartbeat says so, and `gantry fleet` shows it).
    let pauseApplied = Mutex<Set<String>>([])
    /// Set when the runner has drained: every attempt it ran has returned.
    let drained = Atomic<Bool>(false)
    /// Set when the worker took new attempts; the lease keeper announces them at its next tick.
    let announceSoon = Atomic<Bool>(false)
    let startedMs = WallClock.nowMs()

    /// How long a read of deliveries blocks in Redis when nothing comes.
    static let readBlock = Duration.seconds(2)

    init(configuration: WorkerConfiguration, registry: ExecutorRegistry, logger: Logger) {
        self.configuration = configuration
        self.registry = registry
        self.logger = logger
        let id = configuration.id
        reader = RedisConnection(url: configuration.redis, configuration: .init(
            commandTimeout: Self.readBlock + .seconds(5), clientName: "gantry-worker-\(id)-read"))
        writer = RedisConnection(url: configuration.redis, configuration: .init(clientName: "gantry-worker-\(id)"))
        heartbeat = RedisConnection(url: configuration.redis, configuration: .init(
            commandTimeout: max(.seconds(1), configuration.lease / 3), clientName: "gantry-worker-\(id)-lease"))
        db = PostgresConnection(url: configuration.database, applicationName: "gantry-worker \(id)")
        queue = WorkQueue(keys: configuration.keys)
        cancels = CancelList(keys: configuration.keys)
        slots = Slots(configuration.concurrency)
    }

    /// Runs `body` until it succeeds; gives up only when the worker is torn down (canceled,
    /// not drained: a drain still records and acknowledges everything it holds).
    func untilSuccess<E: Error>(_ what: @autoclosure () -> String, _ body: () async throws(E) -> Void) async {
        await retryUntilSuccess(what(), logger: logger, giveUp: { Task.isCancelled }, body)
    }
}

/// One finished attempt on its way to the ledger.
struct FinishedAttempt: Sendable {
    let kind: String
    let deliveryID: String
    var result: AttemptResult
}
