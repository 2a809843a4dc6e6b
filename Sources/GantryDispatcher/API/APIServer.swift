import Foundation
import GantryCore
import GantryPostgres
import GantryRedis
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import Synchronization

/// The dispatcher's HTTP API (Hummingbird): runs, approvals, control, health,
/// and its OpenAPI document at `/openapi.yaml`.
struct APIServer: Sendable {
    let configuration: APIConfiguration
    let api: RunAPI
    let logger: Logger

    init(configuration: APIConfiguration, dispatcher: DispatcherConfiguration, effector: Effector, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        let redis = RedisConnection(url: dispatcher.redis, configuration: .init(clientName: "gantry-api-\(dispatcher.id)"))
        self.api = RunAPI(
            namespace: dispatcher.keys.namespace,
            pool: PostgresPool(url: dispatcher.database, size: configuration.databaseConnections, applicationName: "gantry-api \(dispatcher.id)"),
            reads: PostgresPool(url: dispatcher.database, size: configuration.readConnections, applicationName: "gantry-api-reads \(dispatcher.id)"),
            redis: redis,
            effector: effector,
            changes: RunChangeFeed(keys: dispatcher.keys, redisURL: dispatcher.redis, clientName: "gantry-api-changes-\(dispatcher.id)",
                                   fallback: configuration.eventsFallback, logger: logger),
            logs: LogTailFeed(keys: dispatcher.keys, redisURL: dispatcher.redis, replica: dispatcher.id, logger: logger),
            fleets: FleetCache(keys: dispatcher.keys, redis: redis),
            logger: logger, maxBodyBytes: configuration.maxBodyBytes,
            limiter: TokenRateLimiter(rate: configuration.tokenRate, burst: 2 * configuration.tokenRate),
            streams: StreamLimits(perToken: configuration.streamsPerToken, recheck: configuration.streamRecheck)
        )
    }

    /// Serves until graceful shutdown. Throws `APIListenError` when it cannot listen.
    func run() async throws {
        let listening = Mutex(false)
        let application = Application(
            router: router(),
            server: try serverBuilder(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "gantry"),
            onServerRunning: { [logger, configuration] _ in
                listening.withLock { $0 = true }
                logger.info("API listening", metadata: ["gantry.listen": "\(configuration.host):\(configuration.port)"])
            },
            logger: logger
        )
        let changes = api.changes, logs = api.logs
        let api = self.api
        let flushEvery = configuration.refusalFlushInterval
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await changes.run() }
            group.addTask { await logs.run() }
            group.addTask { await api.refusals.run(every: flushEvery) { await api.flushRefusals($0) } }
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

    func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        let api = self.api
        router.get("/healthz") { _, _ in APIResponses.json(.ok, text: #"{"status":"ok"}"#) }
        router.get("/readyz") { _, _ in await api.ready() }
        router.get("/openapi.yaml") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.yaml)))
        }
        router.post("/v1/runs") { request, _ in await handle { try await api.submit(request) } }
        router.get("/v1/runs") { request, _ in await handle { try await api.list(request) } }
        router.get("/v1/runs/:id") { request, context in
            await handle { try await api.get(request, id: try context.parameters.require("id")) }
        }
        router.get("/v1/runs/:id/events") { request, context in
            await handle { try await api.events(request, id: try context.parameters.require("id")) }
        }
        router.get("/v1/runs/:id/logs") { request, context in
            await handle { try await api.logs(request, id: try context.parameters.require("id")) }
        }
        router.get("/v1/environments") { request, _ in await handle { try await api.listEnvironments(request) } }
        router.get("/v1/environments/:name") { request, context in
            await handle { try await api.showEnvironment(request, name: try context.parameters.require("name")) }
        }
        router.post("/v1/runs/:id/approve") { request, context in
            await handle { try await api.decide(request, id: try context.parameters.require("id"), approve: true) }
        }
        router.post("/v1/runs/:id/reject") { request, context in
            await handle { try await api.decide(request, id: try context.parameters.require("id"), approve: false) }
        }
        router.post("/v1/runs/:id/cancel") { request, context in
            await handle { try await api.cancel(request, id: try context.parameters.require("id")) }
        }
        router.post("/v1/runs/:id/retry") { request, context in
            await handle { try await api.retry(request, id: try context.parameters.require("id")) }
        }
        return router
    }

    /// Turns every failure into a JSON error with one line: refusals keep their
    /// status, an unreachable database is 503, anything else is 500 and logged.
    private func handle(_ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch let error as APIError {
            return error.response
        } catch let error as PostgresError where error.isConnectionFailure {
            return APIError.unavailable("the database is not reachable; retry shortly").response
        } catch {
            logger.error("request failed", metadata: ["error": "\(error)"])
            return APIError(status: .internalServerError, message: "internal error; the dispatcher's log has the details").response
        }
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
