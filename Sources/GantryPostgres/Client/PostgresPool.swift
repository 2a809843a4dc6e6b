import Synchronization

/// A fixed set of connections handed out round-robin, for callers that run
/// concurrently (the HTTP API). Each connection runs one statement at a time on
/// its own thread; more connections let more requests proceed at once.
public final class PostgresPool: Sendable {
    private let connections: [PostgresConnection]
    private let next = Atomic<Int>(0)

    public init(url: PostgresURL, size: Int, applicationName: String) {
        connections = (0..<max(1, size)).map { _ in PostgresConnection(url: url, applicationName: applicationName) }
    }

    /// The next connection in turn.
    public var connection: PostgresConnection {
        let index = next.add(1, ordering: .relaxed).newValue
        return connections[index % connections.count]
    }
}
