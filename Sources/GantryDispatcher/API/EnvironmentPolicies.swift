import GantryCore
import GantryPostgres
import Hummingbird
import Synchronization

/// The environments' policies as the API reads them: loaded from Postgres at each submit
/// (an admin's apply takes effect at the next one) and parsed once per distinct text.
final class EnvironmentPolicies: Sendable {
    private let store = EnvironmentStore()
    /// Parsed policies by the SHA-256 of their text; a text is parsed once per dispatcher.
    private let parsed = Mutex<[String: EnvironmentPolicy]>([:])

    /// What a submit to `environment` needs, in one query: its own policy (nil when it has none,
    /// or for a run without an environment) and every other environment's, for reservations.
    /// Its own stored policy failing to parse (an older Gantry wrote it) refuses the submit
    /// rather than running without protection; another's is left out of the reservations.
    func load(for environment: String?, namespace: String, on db: PostgresConnection) async throws -> (own: EnvironmentPolicy?, others: [EnvironmentPolicy]) {
        var own: EnvironmentPolicy?
        var others: [EnvironmentPolicy] = []
        for stored in try await store.list(namespace: namespace, on: db) {
            let (policy, diagnostics) = parse(stored)
            if stored.name == environment {
                guard let policy else {
                    throw APIError(status: .internalServerError,
                        message: "the stored policy of environment \(stored.name) does not parse (\(diagnostics.first?.description ?? "?")); an admin must apply it again")
                }
                own = policy
            } else if let policy {
                others.append(policy)
            }
        }
        return (own, others)
    }

    /// A stored policy, parsed once per distinct text.
    private func parse(_ stored: EnvironmentStore.Stored) -> (EnvironmentPolicy?, [PipelineDiagnostic]) {
        if let cached = parsed.withLock({ $0[stored.sha256] }) { return (cached, []) }
        let (policy, diagnostics) = EnvironmentPolicyParser().parse(stored.definition, file: "environment \(stored.name)")
        if let policy {
            parsed.withLock { cache in
                if cache.count > 1_000 { cache.removeAll() }
                cache[stored.sha256] = policy
            }
        }
        return (policy, diagnostics)
    }
}
