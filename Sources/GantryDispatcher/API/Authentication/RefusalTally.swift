import Synchronization

/// Requests refused before a token was known (no token, an unknown or revoked one), counted
/// in memory and written to the actions log as one row per kind every few seconds, not one
/// row per request: a flood of unauthenticated requests must not be a flood of inserts.
final class RefusalTally: Sendable {
    struct Key: Hashable, Sendable {
        var actor: String
        var action: String
        var reason: String
    }

    private let counts = Mutex<[Key: Int]>([:])

    func note(actor: String, action: String, reason: String) {
        counts.withLock { $0[Key(actor: actor, action: action, reason: reason), default: 0] += 1 }
    }

    /// What was counted since the last call, emptied.
    func drain() -> [(Key, Int)] {
        counts.withLock { counts in
            defer { counts.removeAll() }
            return counts.sorted { ($0.key.actor, $0.key.action) < ($1.key.actor, $1.key.action) }.map { ($0.key, $0.value) }
        }
    }

    /// Writes the counts every `interval` until cancelled, then once more.
    func run(every interval: Duration, write: @Sendable ([(Key, Int)]) async -> Void) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            let pending = drain()
            if !pending.isEmpty { await write(pending) }
        }
        let rest = drain()
        if !rest.isEmpty { await write(rest) }
    }
}
