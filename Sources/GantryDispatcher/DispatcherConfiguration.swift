import GantryPostgres
import GantryRedis

/// How a dispatcher process runs its loops.
public struct DispatcherConfiguration: Sendable {
    /// This replica's name; its events consumers are `dispatcher-<id>` (the first lane) and
    /// `dispatcher-<id>#<n>` (lane n, from 2).
    public var id: String
    public var redis: RedisURL
    public var database: PostgresURL
    public var keys: QueueKeys
    /// How often the reaper looks for expired leases.
    public var reapInterval: Duration
    /// The lease assumed for a consumer that has no heartbeat entry.
    public var defaultLease: Duration
    /// How often the reconciler compares Postgres with Redis.
    public var reconcileInterval: Duration
    /// How long a step must have been unchanged before the reconciler checks it.
    public var reconcileAfter: Duration
    /// How often new cancels are read to take their attempts no worker was given out of Redis.
    public var withdrawInterval: Duration
    /// The most outcomes applied in one transaction.
    public var eventBatch: Int
    /// How many loops apply outcomes at once, each its own events consumer with its own
    /// connections: one loop is a chain of round trips (read, lock, update, commit, publish,
    /// acknowledge) that leaves the machine idle between them and falls behind the workers.
    public var lanes: Int
    /// The HTTP API, when this replica serves it (`--listen`).
    public var api: APIConfiguration?

    public init(
        id: String, redis: RedisURL, database: PostgresURL, keys: QueueKeys = QueueKeys(),
        reapInterval: Duration = .milliseconds(500), defaultLease: Duration = .seconds(30),
        reconcileInterval: Duration = .seconds(15), reconcileAfter: Duration = .seconds(60),
        withdrawInterval: Duration = .seconds(1), eventBatch: Int = 1_000, lanes: Int = 2,
        api: APIConfiguration? = nil
    ) {
        self.id = id
        self.redis = redis
        self.database = database
        self.keys = keys
        self.reapInterval = reapInterval
        self.defaultLease = defaultLease
        self.reconcileInterval = reconcileInterval
        self.reconcileAfter = reconcileAfter
        self.withdrawInterval = withdrawInterval
        self.eventBatch = eventBatch
        self.lanes = max(1, lanes)
        self.api = api
    }
}
