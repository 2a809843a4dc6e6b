import Foundation
import GantryAPI
import GantryCore
import GantryPostgres
import GantryRedis
import GantryRuntime
import Hummingbird
import OpenAPIHummingbird
import OpenAPIRuntime
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import Synchronization

/// The dispatcher's HTTP API (Hummingbird): runs, approvals, control, environments, health,
/// and its OpenAPI document at `/openapi.yaml`. Routes are registered by resource; those under
/// `/v1` sit behind `AuthenticationMiddleware`, and every failure leaves as an `APIError`.
struct APIServer: Sendable {
    let configuration: APIConfiguration
    let logger: Logger
    let namespace: String
    /// Connections for changes (submit, decisions, cancel, retry, the actions log).
    let pool: PostgresPool
    /// Connections for reads and token checks only: a read never queues behind a submit's transaction.
    let reads: PostgresPool
    let redis: RedisConnection
    let effector: Effector
    /// Wakes event streams when their run changes.
    let changes: RunChangeFeed
    /// Wakes followed logs when they grow, and lends them a connection to read.
    let logs: LogTailFeed
    /// The live workers, for steps that run and queues nobody takes.
    let fleets: FleetCache
    /// Each token's open streams, and their recheck of its revocation.
    let streams: StreamLimits
    let authenticator: Authenticator
    let audit: ActionAudit
    /// How fast workers take each queue, for `GET /v1/queues`.
    let rates = QueueRates()
    let keys: QueueKeys

    init(configuration: APIConfiguration, dispatcher: DispatcherConfiguration, effector: Effector, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.namespace = dispatcher.keys.namespace
        self.keys = dispatcher.keys
        self.pool = PostgresPool(url: dispatcher.database, size: configuration.databaseConnections, applicationName: "gantry-api \(dispatcher.id)")
        self.reads = PostgresPool(url: dispatcher.database, size: configuration.readConnections, applicationName: "gantry-api-reads \(dispatcher.id)")
        self.redis = RedisConnection(url: dispatcher.redis, configuration: .init(clientName: "gantry-api-\(dispatcher.id)"))
        self.effector = effector
        self.changes = RunChangeFeed(keys: dispatcher.keys, redisURL: dispatcher.redis, clientName: "gantry-api-changes-\(dispatcher.id)",
                                     fallback: configuration.eventsFallback, logger: logger)
        self.logs = LogTailFeed(keys: dispatcher.keys, redisURL: dispatcher.redis, replica: dispatcher.id, logger: logger)
        self.fleets = FleetCache(keys: dispatcher.keys, redis: redis)
        self.streams = StreamLimits(perToken: configuration.streamsPerToken, recheck: configuration.streamRecheck)
        self.authenticator = Authenticator(
            namespace: namespace, reads: reads,
            limiter: TokenRateLimiter(rate: configuration.tokenRate, burst: 2 * configuration.tokenRate),
            refusals: RefusalTally()
        )
        self.audit = ActionAudit(namespace: namespace, pool: pool)
    }

    /// Serves until graceful shutdown. Throws `APIListenError` when it cannot listen.
    func run() async throws {
        let listening = Mutex(false)
        let application = Application(
            router: try router(),
            server: try serverBuilder(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "gantry"),
            onServerRunning: { [logger, configuration] _ in
                listening.withLock { $0 = true }
                logger.info("API listening", metadata: ["gantry.listen": "\(configuration.host):\(configuration.port)"])
            },
            logger: logger
        )
        let changes = changes, logs = logs, refusals = authenticator.refusals, audit = audit
        let queues = QueueRoutes(redis: redis, keys: keys, audit: audit, rates: rates)
        let flushEvery = configuration.refusalFlushInterval
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await changes.run() }
            group.addTask { await changes.runFallback() }
            group.addTask { await logs.run() }
            group.addTask { await logs.runFallback() }
            group.addTask { await queues.sample() }
            group.addTask { await refusals.run(every: flushEvery) { await audit.flushRefusals($0) } }
            do {
                try await application.run()
            } catch where !listening.withLock({ $0 }) {
                throw APIListenError(address: "\(configuration.host):\(configuration.port)", underlying: "\(error)")
            }
            group.cancelAll()
        }
    }

    /// HTTP/1.1 with the idle timeout, inside TLS when a certificate and key are given.
    private func serverBuilder() throws -> HTTPServerBuilder {
        let http = HTTPServerBuilder.http1(configuration: .init(
            idleTimeout: .nanoseconds(Int64(configuration.idleTimeout.components.seconds) * 1_000_000_000)
        ))
        guard let certificateFile = configuration.tlsCertificateFile, let keyFile = configuration.tlsKeyFile else { return http }
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificateFile)
            key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
        } catch {
            throw APITLSError(reason: "--tls-cert \(certificateFile) / --tls-key \(keyFile): cannot be read as PEM (\(error))")
        }
        guard !chain.isEmpty else { throw APITLSError(reason: "--tls-cert \(certificateFile): no certificate in the file") }
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.minimumTLSVersion = .tlsv12
        return try .tls(http, tlsConfiguration: tls)
    }

    /// Every operation of openapi.yaml, registered by the server generated from it, behind
    /// `AuthenticationMiddleware`; every failure leaves as an `APIError`.
    func router() throws -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: NoStore())
        router.add(middleware: APIErrorMiddleware())
        router.add(middleware: JSONRequestBodies(limit: configuration.maxBodyBytes))
        let runReader = RunReader(namespace: namespace, reads: reads, fleets: fleets, audit: audit)
        let handlers = APIHandlers(
            health: HealthRoutes(reads: reads, redis: redis),
            submission: RunSubmitRoutes(
                namespace: namespace, pool: pool, reads: reads, redis: redis, effector: effector, audit: audit, runs: runReader, logger: logger
            ),
            queries: RunQueryRoutes(namespace: namespace, reads: reads, audit: audit, runs: runReader, authenticator: authenticator),
            events: RunEventRoutes(namespace: namespace, reads: reads, runs: runReader, changes: changes, fleets: fleets, streams: streams),
            logs: StepLogRoutes(namespace: namespace, reads: reads, runs: runReader, logs: logs, streams: streams),
            decisions: RunDecisionRoutes(namespace: namespace, pool: pool, redis: redis, effector: effector, audit: audit, runs: runReader),
            environments: EnvironmentRoutes(namespace: namespace, reads: reads),
            fleet: FleetRoutes(redis: redis, keys: keys, audit: audit),
            queues: QueueRoutes(redis: redis, keys: keys, audit: audit, rates: rates),
            metrics: configuration.metricsExposition
        )
        try handlers.registerHandlers(
            on: router,
            configuration: APIJSON.configuration,
            middlewares: [AuthenticationMiddleware(authenticator: authenticator), RunReadAnswer(queries: handlers.queries)]
        )
        return router
    }
}

/// The API's certificate or key could not be used.
public struct APITLSError: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { reason }
}

/// The API could not listen where `--listen` said (the port taken, an address not on this host).
public struct APIListenError: Error, CustomStringConvertible {
    public let address: String
    /// What the server said, e.g. "bind(descriptor:ptr:bytes:): Address already in use) (errno: 98)".
    public let underlying: String

    public var description: String {
        // The reason without the system call's name and its punctuation.
        var reason = underlying
        if let call = reason.range(of: "): ") { reason = String(reason[call.upperBound...]) }
        reason = reason.replacingOccurrences(of: ") (errno: ", with: " (errno ")
        return "--listen \(address): cannot listen there: \(reason); stop what holds it or pick another --listen"
    }
}
