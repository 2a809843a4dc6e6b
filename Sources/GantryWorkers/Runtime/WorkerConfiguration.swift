import GantryCore
import GantryPostgres
import GantryRedis

/// How one worker process runs.
public struct WorkerConfiguration: Sendable {
    /// The worker's name: its Redis consumer name and the `worker` of its attempt records.
    public var id: String
    /// The kinds it takes, each with its fleet definition.
    public var kinds: [String]
    /// Attempts it runs at once.
    public var concurrency: Int
    /// How long a silent worker keeps a step; renewed every third of it.
    public var lease: Duration
    /// On SIGTERM, how long in-flight attempts may finish before they are handed back.
    public var drainGrace: Duration
    public var redis: RedisURL
    public var database: PostgresURL
    public var keys: QueueKeys
    /// The most attempt records written in one statement.
    public var maxBatch: Int
    /// Where steps' secrets come from.
    public var secrets: SecretStore
    /// Which secret names its pool may resolve (from the environments' policies, kept current).
    public var secretScope: PoolSecretScope
    /// Secret values shorter than this are refused (the step fails) rather than redacted; 0: any length.
    public var minSecretLength: Int

    public init(
        id: String, kinds: [String], concurrency: Int, lease: Duration, drainGrace: Duration,
        redis: RedisURL, database: PostgresURL, keys: QueueKeys = QueueKeys(), maxBatch: Int = 512,
        secrets: SecretStore = SecretStore(directory: nil), secretScope: PoolSecretScope = PoolSecretScope(pool: nil), minSecretLength: Int = 0
    ) {
        self.minSecretLength = max(0, minSecretLength)
        self.secretScope = secretScope
        self.id = id
        self.kinds = kinds
        self.concurrency = max(1, concurrency)
        self.lease = max(lease, .seconds(1))
        self.drainGrace = drainGrace
        self.redis = redis
        self.database = database
        self.keys = keys
        self.maxBatch = maxBatch
        self.secrets = secrets
    }
}
