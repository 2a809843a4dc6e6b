import Hummingbird
import Logging
import NIOCore

/// A real HTTP server in the test process (Hummingbird on a free loopback port),
/// for the HTTP client and the step kinds that call HTTP services.
package enum LocalHTTPServer {
    /// Serves `router` while `body` runs, passing it the base URL (`http://127.0.0.1:PORT`).
    package static func serve(_ router: Router<BasicRequestContext>, _ body: @Sendable (String) async throws -> Void) async throws {
        let (ports, portSink) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                portSink.yield(channel.localAddress?.port ?? 0)
                portSink.finish()
            },
            logger: Logger(label: "test-http-server")
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.run() }
            var iterator = ports.makeAsyncIterator()
            let port = await iterator.next() ?? 0
            try await body("http://127.0.0.1:\(port)")
            group.cancelAll()
        }
    }
}
