import GantryCore
import GantryPostgres
import HTTPTypes

/// Finds who sent a request from its bearer token: the token's hash (admitted by the token's
/// rate limit), then its grant. Refusals before a token is known are counted in `refusals`
/// (written as counts, not one row each); every refusal says what to do.
struct Authenticator: Sendable {
    let namespace: String
    /// Connections for reads and token checks only: a token check never queues behind a submit.
    let reads: PostgresPool
    /// Each token's request budget.
    let limiter: TokenRateLimiter
    /// Unauthenticated refusals, flushed to the actions log by `ActionAudit.flushRefusals`.
    let refusals: RefusalTally
    let tokens = TokenStore()

    /// The hash of the request's bearer token; no token is refused (401, counted), a token past
    /// its rate is refused (429 with `Retry-After`) before any database work.
    func tokenHash(authorization header: String?, action: String) throws -> String {
        guard let header, header.hasPrefix("Bearer "), header.count > 7 else {
            refusals.note(actor: "(no token)", action: action, reason: "no bearer token")
            throw APIError.unauthorized("no token: send Authorization: Bearer <token> (gantry token create makes one; the CLI reads GANTRY_TOKEN)")
        }
        let hash = APITokens.hash(String(header.dropFirst(7)))
        if let wait = limiter.admit(hash) {
            throw APIError(status: .tooManyRequests,
                message: "this token sent more than \(Int(limiter.rate)) requests a second; wait \(wait)s (Retry-After) and slow down", retryAfter: wait)
        }
        return hash
    }

    /// The grant of the token with this hash; an unknown or revoked token is refused (401, counted).
    func grant(hash: String, action: String) async throws -> Grant {
        let grant = try await reads.withConnection { db in try await tokens.grant(hash: hash, namespace: namespace, on: db) }
        return try accept(grant, hash: hash, action: action)
    }

    /// A grant a route looked up itself (with the data it reads, in one round trip): nil is an
    /// unknown or revoked token (401, counted); a real one gets a rate bucket of its own.
    func accept(_ grant: Grant?, hash: String, action: String) throws -> Grant {
        guard let grant else {
            refusals.note(actor: "(unknown token)", action: action, reason: "unknown or revoked token")
            throw APIError.unauthorized("the token is unknown or revoked; ask an admin for a new one (gantry token create)")
        }
        limiter.register(hash)
        return grant
    }
}
