import GantryPostgres
import Hummingbird
import Synchronization

/// The long-lived responses (a run's events, a followed log) a token holds open: at most
/// `perToken` at once, and each checks now and then that its token is still live, so that a
/// revoked token's streams close within `recheck` instead of running on for days.
final class StreamLimits: Sendable {
    let perToken: Int
    let recheck: Duration
    private let open = Mutex<[String: Int]>([:])

    init(perToken: Int, recheck: Duration) {
        self.perToken = perToken
        self.recheck = recheck
    }

    /// Takes a place for a stream of the token with this hash, or refuses (429) when it holds enough.
    func acquire(_ tokenHash: String) throws -> StreamPlace {
        let taken = open.withLock { open -> Bool in
            let count = open[tokenHash, default: 0]
            guard count < perToken else { return false }
            open[tokenHash] = count + 1
            return true
        }
        guard taken else {
            throw APIError(status: .tooManyRequests,
                message: "this token already holds \(perToken) open streams (events, followed logs); close one first", retryAfter: 5)
        }
        return StreamPlace(limits: self, tokenHash: tokenHash)
    }

    fileprivate func release(_ tokenHash: String) {
        open.withLock { open in
            let count = open[tokenHash, default: 1] - 1
            open[tokenHash] = count > 0 ? count : nil
        }
    }
}

/// One open stream's place; `release()` when the stream ends. `stillLive` says whether its
/// token was revoked, reading the database at most once per `recheck`.
final class StreamPlace: Sendable {
    private let limits: StreamLimits
    let tokenHash: String
    private let state = Mutex<(released: Bool, checkedAt: ContinuousClock.Instant)>((false, .now))

    fileprivate init(limits: StreamLimits, tokenHash: String) {
        self.limits = limits
        self.tokenHash = tokenHash
    }

    // A response whose body never ran (the client left while the run was read) still gives its place back.
    deinit { release() }

    func release() {
        let first = state.withLock { state -> Bool in
            defer { state.released = true }
            return !state.released
        }
        if first { limits.release(tokenHash) }
    }

    /// False once the token is found revoked (or unknown); true between checks.
    func stillLive(namespace: String, reads: PostgresPool) async -> Bool {
        let due = state.withLock { state -> Bool in
            guard ContinuousClock.now - state.checkedAt >= limits.recheck else { return false }
            state.checkedAt = .now
            return true
        }
        guard due else { return true }
        // A database that cannot answer keeps the stream open; only a missing token ends it.
        do {
            return try await reads.withConnection { db in try await TokenStore().grant(hash: tokenHash, namespace: namespace, on: db) } != nil
        } catch {
            return true
        }
    }
}
