import GantryCore
import GantryPostgres
import Logging
import ServiceLifecycle
import Synchronization

/// The secret names a worker's pool may resolve, kept current with the environments'
/// policies: read before the worker takes its first step, then again every `interval`
/// (`gantry worker --policy-refresh`), so that an apply that takes a secret away from a
/// pool (or moves an environment to another pool) reaches running workers without a
/// restart. While Postgres cannot be read, the last scope read stays in force.
public final class PoolSecretScope: Sendable {
    public let pool: String?
    private let scope: Mutex<SecretScope>

    public init(pool: String?, initial: SecretScope = .unrestricted) {
        self.pool = pool
        scope = Mutex(initial)
    }

    /// The scope in force now.
    public var current: SecretScope { scope.withLock { $0 } }

    /// Reads every environment's policy and makes their scope for this pool current.
    /// Returns the policies read, and whether the scope changed.
    @discardableResult
    public func refresh(namespace: String, on db: PostgresConnection) async throws(PostgresError) -> (policies: [EnvironmentPolicy], changed: Bool) {
        let stored = try await EnvironmentStore().list(namespace: namespace, on: db)
        // Stored policies were validated when applied; one that no longer parses is skipped.
        let policies = stored.compactMap { EnvironmentPolicyParser().parse($0.definition, file: $0.name).policy }
        let next = SecretScope.of(pool: pool, policies: policies)
        let changed = scope.withLock { current -> Bool in
            defer { current = next }
            return current != next
        }
        return (policies, changed)
    }

    /// Describes a scope by its names (never a value): for the log line of a change.
    public static func describe(_ scope: SecretScope) -> String {
        let allowed = scope.allowed.map { $0.isEmpty ? "none" : $0.sorted().joined(separator: ", ") } ?? "any"
        return scope.reserved.isEmpty ? allowed : "\(allowed) (never: \(scope.reserved.sorted().joined(separator: ", ")))"
    }
}

/// Re-reads the policies for a `PoolSecretScope` every `interval` until shutdown.
public struct PolicyRefresher: Service {
    let scope: PoolSecretScope
    let namespace: String
    let database: PostgresURL
    let interval: Duration
    let logger: Logger

    public init(scope: PoolSecretScope, namespace: String, database: PostgresURL, interval: Duration, logger: Logger) {
        self.scope = scope
        self.namespace = namespace
        self.database = database
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        let db = PostgresConnection(url: database, applicationName: "gantry worker policies")
        await cancelWhenGracefulShutdown {
            var failing = false
            while !Task.isCancelled {
                do {
                    try await Task.sleep(for: interval)
                } catch {
                    return
                }
                do {
                    let (_, changed) = try await scope.refresh(namespace: namespace, on: db)
                    if failing { logger.info("the environments' policies are readable again") }
                    failing = false
                    if changed {
                        logger.notice("the environments' policies changed: this pool's steps may now name the secrets \(PoolSecretScope.describe(scope.current))",
                                      metadata: ["gantry.pool": "\(scope.pool ?? "default")"])
                    }
                } catch {
                    if !failing {
                        logger.warning("cannot read the environments' policies; the secrets scope read last stays in force", metadata: ["error": "\(error)"])
                    }
                    failing = true
                }
            }
        }
    }
}
