import ArgumentParser
import Foundation
import GantryCore
import GantryDispatcher
import GantryPostgres
import GantryProcess
import GantryWorkers
import Logging
import ServiceLifecycle
import UnixSignals

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run a worker that takes steps of the given kinds.",
        discussion: """
            Defaults for concurrency, lease and drain grace come from workers/<kind>.yaml. \
            SIGTERM drains: no new work, in-flight steps get the grace period, the rest are \
            handed back for immediate re-delivery, then the worker exits 0.
            """
    )

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "Kinds to take, comma-separated: build, scan, backup, deploy, smoke-test, metrics-watch, notify, noop (docs/step-kinds.md).")
    var kind: String

    @Option(help: "Attempts run at once (default: the fleet definition's).")
    var concurrency: Int?

    @Option(help: "How long a silent worker keeps a step, at least 1s (default: the fleet definition's).")
    var lease: String?

    @Option(name: .customLong("drain-grace"), help: "On SIGTERM, how long in-flight steps may finish.")
    var drainGrace: String?

    @Option(help: "This worker's name, 1-100 printable ASCII characters without spaces (default: worker-HOST-PID).")
    var id: String?

    @Option(name: .customLong("secrets-dir"), help: ArgumentHelp("A directory of secret files, one per name (a Kubernetes secret volume).", discussion: "Default: $GANTRY_SECRETS_DIR. GANTRY_SECRET_<NAME> variables are read first."))
    var secretsDirectoryFlag: String?

    private var secretsDirectory: String? {
        secretsDirectoryFlag ?? ProcessInfo.processInfo.environment["GANTRY_SECRETS_DIR"]
    }

    @Option(name: .customLong("state-dir"), help: "Where the deploy kind's local target keeps its services' state and its nginx files.")
    var stateDirectory: String = ProcessInfo.processInfo.environment["GANTRY_STATE_DIR"] ?? ".gantry/local"

    @Option(help: ArgumentHelp(
        "The worker pool to serve (an environment's `pool`); default: the default pool.",
        discussion: "Steps of an environment whose policy names a pool go only to workers started with that --pool, which should hold only those environments' secrets."
    ))
    var pool: String?

    @Option(name: .customLong("min-secret-length"), help: "Refuse (fail the step) secret values shorter than this, which redaction could not hide well; 0 allows any.")
    var minSecretLength: Int = 0

    @Option(name: .customLong("policy-refresh"), help: "How often to re-read the environments' policies (the secrets this pool may resolve), at least 1s.")
    var policyRefresh = "30s"

    @Option(name: .customLong("metrics-listen"), help: "Serve the worker's metrics for Prometheus at http://HOST:PORT/metrics (off by default).")
    var metricsListen: String?

    @Option(name: .customLong("fleet-dir"), help: ArgumentHelp("Where the fleet definitions (KIND.yaml) live.", discussion: "Default: $GANTRY_FLEET_DIR, else ./workers; the worker logs which file it used for each kind, or that it found none."))
    var fleetDirectoryFlag: String?

    private var fleetDirectory: String {
        fleetDirectoryFlag ?? ProcessInfo.processInfo.environment["GANTRY_FLEET_DIR"] ?? "workers"
    }

    func validate() throws {
        if let concurrency, !(1...4096).contains(concurrency) {
            throw ValidationError("--concurrency \(concurrency): use a number from 1 to 4096")
        }
        if let id, !Identifiers.isValidProcessName(id) {
            throw ValidationError("--id '\(id.prefix(100))': a worker's name is 1-100 printable ASCII characters without spaces (e.g. worker-build-1)")
        }
        for name in kinds where !Identifiers.isValidKind(name) {
            throw ValidationError("--kind '\(name)': a kind is 1-32 characters of a-z, 0-9, '-' or '_'")
        }
    }

    private var kinds: [String] {
        kind.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func run() async throws {
        let logger = connection.logger("gantry.worker")
        // Before any step runs: its commands must not read this process's environment.
        if ProcessHardening.makeUndumpable() != 0 {
            logger.warning("could not mark the worker undumpable (prctl); its steps' commands may read its environment")
        }
        let registry = ExecutorRegistry.builtIn(localStateDirectory: stateDirectory)
        for name in kinds where registry.executor(for: name) == nil {
            throw ValidationError("--kind '\(name)': no such kind; known kinds: \(registry.kinds.joined(separator: ", "))")
        }
        var isDirectory: ObjCBool = false
        if fleetDirectoryFlag != nil || ProcessInfo.processInfo.environment["GANTRY_FLEET_DIR"] != nil,
           !FileManager.default.fileExists(atPath: fleetDirectory, isDirectory: &isDirectory) || !isDirectory.boolValue {
            throw UsageError("--fleet-dir / GANTRY_FLEET_DIR \(fleetDirectory): no such directory")
        }
        var fleet: [FleetDefinition] = []
        for name in kinds {
            do { fleet.append(try FleetDefinition.load(kind: name, directory: fleetDirectory)) } catch {
                throw UsageError("\(error)")
            }
        }
        // Which file set each kind's defaults (a worker started outside the repository finds none).
        for definition in fleet {
            logger.info("\(definition.describe(directory: fleetDirectory))")
        }
        let leaseValue = try lease.map { try parseDuration($0, flag: "--lease") } ?? fleet.map(\.lease).min()!
        guard leaseValue >= .seconds(1) else { throw ValidationError("--lease \(lease ?? ""): must be at least 1s") }
        if let pool, !SafeName.isValid(pool) {
            throw ValidationError("--pool '\(pool)': use \(SafeName.rule)")
        }
        // The secrets this pool may resolve, from the environments' policies: read before the
        // first step, then every --policy-refresh.
        let database = try connection.database()
        let refreshEvery = try parseDuration(policyRefresh, flag: "--policy-refresh")
        guard refreshEvery >= .seconds(1) else { throw ValidationError("--policy-refresh \(policyRefresh): must be at least 1s") }
        let secretScope = PoolSecretScope(pool: pool)
        let policyReader = PostgresConnection(url: database, applicationName: "gantry worker policies")
        var policies: [EnvironmentPolicy]
        while true {
            // Without them the worker cannot know which secrets its pool may hold; it waits
            // (it could not record an attempt without Postgres either).
            do {
                policies = try await secretScope.refresh(namespace: connection.namespace, on: policyReader).policies
                break
            } catch {
                logger.warning("cannot read the environments' policies yet; retrying in 2s", metadata: ["error": "\(error)"])
                try await Task.sleep(for: .seconds(2))
            }
        }
        if pool != nil, !policies.contains(where: { $0.pool == pool }) {
            logger.warning("no environment's policy names this pool; its steps will only come once one does", metadata: ["gantry.pool": "\(pool ?? "")"])
        }
        let configuration = WorkerConfiguration(
            id: id ?? defaultProcessID("worker"),
            kinds: kinds.map { Identifiers.queueKind($0, pool: pool) },
            concurrency: concurrency ?? fleet.map(\.concurrency).max()!,
            lease: leaseValue,
            drainGrace: try drainGrace.map { try parseDuration($0, flag: "--drain-grace") } ?? fleet.map(\.drainGrace).max()!,
            redis: try connection.redis(), database: database, keys: connection.keys,
            secrets: SecretStore(directory: secretsDirectory), secretScope: secretScope, minSecretLength: minSecretLength
        )
        if let secretsDirectory, !FileManager.default.fileExists(atPath: secretsDirectory) {
            throw UsageError("--secrets-dir \(secretsDirectory): no such directory")
        }
        let worker = try Worker(configuration: configuration, registry: registry, logger: logger)
        let refresher = PolicyRefresher(scope: secretScope, namespace: connection.namespace, database: database, interval: refreshEvery, logger: logger)
        var services = worker.services + [.init(service: refresher)]
        if let metricsListen {
            guard let address = APIConfiguration.parse(listen: metricsListen) else {
                throw UsageError("--metrics-listen '\(metricsListen)' is not HOST:PORT (e.g. 127.0.0.1:9464)")
            }
            MetricsExport.bootstrap()
            // First to start, last to stop: a draining worker can still be scraped.
            services.insert(.init(service: MetricsServer(host: address.host, port: address.port, logger: logger)), at: 0)
        }
        let group = ServiceGroup(configuration: .init(
            // Shut down in reverse: the refresher stops first, then the worker's services, from
            // the reader to the lease keeper (Worker), then the metrics server.
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        try await group.run()
    }
}
