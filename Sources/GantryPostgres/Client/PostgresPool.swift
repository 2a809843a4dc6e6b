import Synchronization

/// A fixed set of connections for callers that run concurrently (the HTTP API).
/// Each connection runs one call at a time on its own thread; `withConnection`
/// hands out the one with the fewest calls on it, so a quick read does not wait
/// behind a long transaction while another connection is idle.
public final class PostgresPool: Sendable {
    private let connections: [PostgresConnection]
    /// Calls in progress per connection, same order.
    private let busy: [Counter]
    private let next = Atomic<Int>(0)

    private final class Counter: Sendable {
        let value = Atomic<Int>(0)
    }

    public init(url: PostgresURL, size: Int, applicationName: String) {
        connections = (0..<max(1, size)).map { _ in PostgresConnection(url: url, applicationName: applicationName) }
        busy = connections.map { _ in Counter() }
    }

    /// Runs `body` with the least busy connection (ties broken in turn).
    public func withConnection<T>(_ body: (PostgresConnection) async throws -> T) async rethrows -> T {
        let start = next.add(1, ordering: .relaxed).newValue
        var best = start % connections.count
        var bestCalls = busy[best].value.load(ordering: .relaxed)
        for offset in 1..<connections.count where bestCalls > 0 {
            let index = (start + offset) % connections.count
            let calls = busy[index].value.load(ordering: .relaxed)
            if calls < bestCalls {
                best = index
                bestCalls = calls
            }
        }
        busy[best].value.add(1, ordering: .relaxed)
        defer { busy[best].value.subtract(1, ordering: .relaxed) }
        return try await body(connections[best])
    }
}
