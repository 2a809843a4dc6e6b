import GantryPostgres
import GantryRedis

/// How a dispatcher process runs its loops.
public struct DispatcherConfiguration: Sendable {
    /// This replica's name; its events consumer is `dispatcher-<id>`.
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
    /// The most events applied in one transaction.
    public var eventBatch: Int
    /// The HTTP API, when this replica serves it (`--listen`).
    public var api: APIConfiguration?

    public init(
        id: String, redis: RedisURL, database: PostgresURL, keys: QueueKeys = QueueKeys(),
        reapInterval: Duration = .milliseconds(500), defaultLease: Duration = .seconds(30),
        reconcileInterval: Duration = .seconds(15), reconcileAfter: Duration = .seconds(60),
        withdrawInterval: Duration = .seconds(1), eventBatch: Int = 1_000, api: APIConfiguration? = nil
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
        self.api = api
    }
}
