import GantryCore
import GantryPostgres

/// The actions log as the API writes it: every change it makes or refuses, with the token's
/// name, and the grant's decision on an action (a refusal is logged before it is thrown).
struct ActionAudit: Sendable {
    let namespace: String
    /// Connections for changes: the log is written with them.
    let pool: PostgresPool
    let actions = ActionLog()

    /// Refuses (403, logged) unless the grant allows the action on this environment.
    /// - Parameter name: the action as logged, when it is not the `APIAction`'s name ("list", "reject").
    func authorize(_ grant: Grant, _ action: APIAction, environment: String?, runID: String?, log name: String? = nil) async throws {
        if case .failure(let denied) = grant.decide(action, environment: environment) {
            try? await record(actor: grant.name, name ?? action.rawValue, runID: runID, environment: environment, accepted: false, reason: denied.reason)
            throw APIError.forbidden(denied.reason)
        }
    }

    /// One row of the actions log.
    func record(actor: String, _ action: String, runID: String?, environment: String?, accepted: Bool, reason: String?) async throws {
        try await pool.withConnection({ db in try await actions.record(
            namespace: namespace, actor: actor, action: action, runID: runID, environment: environment,
            accepted: accepted, reason: reason, on: db
        ) })
    }

    /// Writes the unauthenticated refusals counted since the last call, one row per kind:
    /// "12 requests: no bearer token".
    func flushRefusals(_ counts: [(RefusalTally.Key, Int)]) async {
        for (key, count) in counts {
            try? await record(actor: key.actor, key.action, runID: nil, environment: nil, accepted: false,
                              reason: count == 1 ? key.reason : "\(count) requests: \(key.reason)")
        }
    }
}
