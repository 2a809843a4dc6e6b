import ArgumentParser
import Foundation
import GantryCore
import GantryDispatcher
import ServiceLifecycle
import UnixSignals

struct DispatcherCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dispatcher",
        abstract: "Run the dispatcher: apply outcomes, schedule retries, reclaim expired leases, reconcile, serve the API.",
        discussion: "Several replicas may run at once; with --listen a replica also serves the HTTP API (docs/api.md), and exits at once (status 1) if it cannot listen there. SIGTERM or SIGINT stops it cleanly."
    )

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "This replica's name, 1-100 printable ASCII characters without spaces (default: dispatcher-HOST-PID).")
    var id: String?

    @Option(name: .customLong("reap-interval"), help: "How often to look for expired leases.")
    var reapInterval: String = "500ms"

    @Option(name: .customLong("default-lease"), help: "The lease of a consumer without a heartbeat entry.")
    var defaultLease: String = "30s"

    @Option(name: .customLong("reconcile-interval"), help: "How often to compare Postgres with Redis.")
    var reconcileInterval: String = "15s"

    @Option(name: .customLong("reconcile-after"), help: "How long a step must be unchanged before the reconciler checks it.")
    var reconcileAfter: String = "60s"

    @Option(name: .customLong("withdraw-interval"), help: "How often to read new cancels and take their attempts no worker was given out of Redis (recorded canceled).")
    var withdrawInterval: String = "1s"

    @Option(help: "Loops that apply outcomes at once, each with its own Redis and Postgres connections (1-16).")
    var lanes: Int = 2

    @Option(help: "Serve the HTTP API on HOST:PORT (e.g. 127.0.0.1:8080).")
    var listen: String?

    @Option(name: .customLong("api-connections"), help: "Postgres connections for API requests that change something (submit, approve, cancel, retry).")
    var apiConnections: Int = 4

    @Option(name: .customLong("events-fallback"), help: "How long a run's event stream (submit --wait) waits for news before it re-reads the run anyway; news of a change arrives at once.")
    var eventsFallback: String = "2s"

    @Option(name: .customLong("api-rate"), help: "Requests per second each API token may make (twice that in a burst) before it is answered 429 with Retry-After; 0: no limit.")
    var apiRate: Double = 100

    @Option(name: .customLong("api-idle-timeout"), help: "Close an API connection that sends no request for this long (a stream being answered is not idle).")
    var apiIdleTimeout: String = "60s"

    @Option(name: .customLong("api-streams-per-token"), help: "Event streams and followed logs one API token may hold open at once (429 past that).")
    var apiStreamsPerToken: Int = 32

    @Option(name: .customLong("api-stream-recheck"), help: "How often an open stream checks that its token was not revoked (a revoked token's streams end then).")
    var apiStreamRecheck: String = "5s"

    @Option(name: .customLong("tls-cert"), help: "With --listen: a PEM certificate (chain) for the API; with --tls-key, the API speaks HTTPS only.")
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: "With --listen: the PEM private key of --tls-cert.")
    var tlsKey: String?

    @Option(name: .customLong("api-read-connections"), help: "Postgres connections for API reads and token checks (kept apart so reads never wait behind a submit).")
    var apiReadConnections: Int = 2

    func validate() throws {
        if let id, !Identifiers.isValidProcessName(id) {
            throw ValidationError("--id '\(id.prefix(100))': a replica's name is 1-100 printable ASCII characters without spaces (e.g. dispatcher-1)")
        }
    }

    func run() async throws {
        guard (1...16).contains(lanes) else { throw UsageError("--lanes \(lanes): use 1 to 16 (2 keeps a dispatcher ahead of its workers on 2 cores)") }
        var api: APIConfiguration?
        if let listen {
            guard var parsed = APIConfiguration.parse(listen: listen) else {
                throw UsageError("--listen '\(listen)' is not HOST:PORT (e.g. 127.0.0.1:8080)")
            }
            guard (1...64).contains(apiConnections) else { throw UsageError("--api-connections must be between 1 and 64") }
            guard (1...64).contains(apiReadConnections) else { throw UsageError("--api-read-connections must be between 1 and 64") }
            parsed.databaseConnections = apiConnections
            parsed.readConnections = apiReadConnections
            parsed.eventsFallback = try parseDuration(eventsFallback, flag: "--events-fallback")
            guard apiRate >= 0, apiRate <= 1_000_000 else { throw UsageError("--api-rate \(apiRate): use 0 (no limit) or a rate up to 1000000") }
            parsed.tokenRate = apiRate
            parsed.idleTimeout = try parseDuration(apiIdleTimeout, flag: "--api-idle-timeout")
            guard parsed.idleTimeout >= .seconds(1) else { throw UsageError("--api-idle-timeout \(apiIdleTimeout): use 1s or more") }
            guard (tlsCert == nil) == (tlsKey == nil) else { throw UsageError("--tls-cert and --tls-key go together: give both for HTTPS, or neither") }
            for (flag, path) in [("--tls-cert", tlsCert), ("--tls-key", tlsKey)] {
                if let path, !FileManager.default.isReadableFile(atPath: path) { throw UsageError("\(flag) \(path): cannot read it") }
            }
            guard (1...10_000).contains(apiStreamsPerToken) else { throw UsageError("--api-streams-per-token \(apiStreamsPerToken): use 1 to 10000") }
            parsed.streamsPerToken = apiStreamsPerToken
            parsed.streamRecheck = try parseDuration(apiStreamRecheck, flag: "--api-stream-recheck")
            guard parsed.streamRecheck >= .milliseconds(100) else { throw UsageError("--api-stream-recheck \(apiStreamRecheck): use 100ms or more") }
            parsed.tlsCertificateFile = tlsCert
            parsed.tlsKeyFile = tlsKey
            guard parsed.eventsFallback >= .milliseconds(100) else {
                throw UsageError("--events-fallback \(eventsFallback): use 100ms or more (streams get news at once; this is only the safety net)")
            }
            MetricsExport.bootstrap()
            parsed.metricsExposition = { MetricsExport.exposition() }
            api = parsed
        }
        let logger = connection.logger("gantry.dispatcher")
        let configuration = DispatcherConfiguration(
            id: id ?? defaultProcessID("dispatcher"),
            redis: try connection.redis(), database: try connection.database(), keys: connection.keys,
            reapInterval: try parseDuration(reapInterval, flag: "--reap-interval"),
            defaultLease: try parseDuration(defaultLease, flag: "--default-lease"),
            reconcileInterval: try parseDuration(reconcileInterval, flag: "--reconcile-interval"),
            reconcileAfter: try parseDuration(reconcileAfter, flag: "--reconcile-after"),
            withdrawInterval: try parseDuration(withdrawInterval, flag: "--withdraw-interval"),
            lanes: lanes, api: api
        )
        let dispatcher = Dispatcher(configuration: configuration, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: dispatcher.services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        dispatcher.logStarted()
        try await group.run()
        dispatcher.logStopped()
    }
}
