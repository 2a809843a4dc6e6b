import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization

/// A worker's `--metrics-listen HOST:PORT`: `GET /metrics` for Prometheus (and `GET /healthz`),
/// a service of the worker's group that starts first and stops last, so a draining worker can
/// still be scraped.
struct MetricsServer: Service {
    let host: String
    let port: Int
    let logger: Logger

    func run() async throws {
        let router = Router()
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: MetricsExport.exposition()))
            )
        }
        router.get("/healthz") { _, _ in "ok\n" }
        let listening = Mutex(false)
        let application = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "gantry-worker-metrics"),
            onServerRunning: { [logger, host, port] _ in
                listening.withLock { $0 = true }
                logger.info("metrics listening", metadata: ["gantry.listen": "\(host):\(port)"])
            },
            logger: logger
        )
        do {
            try await application.run()
        } catch where !listening.withLock({ $0 }) {
            throw UsageError("--metrics-listen \(host):\(port): cannot listen there (\(error)); stop what holds it or pick another")
        }
    }
}
