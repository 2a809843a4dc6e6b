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

    /// Every environment's policy (parsed once per distinct text); one that no longer parses is left out.
    func all(namespace: String, on db: PostgresConnection) async throws -> [EnvironmentPolicy] {
        try await store.list(namespace: namespace, on: db).compactMap { stored in
            if let cached = parsed.withLock({ $0[stored.sha256] }) { return cached }
            guard let policy = EnvironmentPolicyParser().parse(stored.definition, file: stored.name).policy else { return nil }
            parsed.withLock { cache in
                if cache.count > 1_000 { cache.removeAll() }
                cache[stored.sha256] = policy
            }
            return policy
        }
    }

    /// The policy of `environment`, or nil when it has none (or the run has no environment).
    /// A stored policy that no longer parses (an older Gantry wrote it) refuses the submit
    /// rather than running without protection.
    func policy(for environment: String?, namespace: String, on db: PostgresConnection) async throws -> EnvironmentPolicy? {
        guard let environment else { return nil }
        guard let stored = try await store.load(environment, namespace: namespace, on: db) else { return nil }
        if let cached = parsed.withLock({ $0[stored.sha256] }) { return cached }
        let (policy, diagnostics) = EnvironmentPolicyParser().parse(stored.definition, file: "environment \(environment)")
        guard let policy else {
            throw APIError(status: .internalServerError,
                message: "the stored policy of environment \(environment) does not parse (\(diagnostics.first?.description ?? "?")); an admin must apply it again")
        }
        parsed.withLock { cache in
            if cache.count > 1_000 { cache.removeAll() }
            cache[stored.sha256] = policy
        }
        return policy
    }
}

extension RunAPI {
    // MARK: Environments

    /// `GET /v1/environments`: the policies of the environments the token may read.
    func listEnvironments(_ request: Request) async throws -> Response {
        let grant = try await authenticate(request, action: "environments")
        let stored = try await reads.withConnection { db in try await EnvironmentStore().list(namespace: namespace, on: db) }
        let visible = stored.filter { grant.decide(.read, environment: $0.name).isSuccess }
        let items = visible.map { Self.environmentJSON($0).jsonText }
        return APIResponses.json(.ok, text: "{\"environments\":[" + items.joined(separator: ",") + "]}")
    }

    /// `GET /v1/environments/{name}`: one policy, or what applies when it has none.
    func showEnvironment(_ request: Request, name: String) async throws -> Response {
        let grant = try await authenticate(request, action: "environments")
        guard case .success = grant.decide(.read, environment: name) else {
            throw APIError.notFound("no environment \(name.prefix(64)) that this token may read")
        }
        guard let stored = try await reads.withConnection({ db in try await EnvironmentStore().load(name, namespace: namespace, on: db) }) else {
            let object: JSONValue = .object([
                "name": .string(name), "policy": .null,
                "summary": .string("no policy: runs of \(name) are held only to their pipeline file's gates"),
            ])
            return APIResponses.json(.ok, text: object.jsonText)
        }
        return APIResponses.json(.ok, text: Self.environmentJSON(stored).jsonText)
    }

    static func environmentJSON(_ stored: EnvironmentStore.Stored) -> JSONValue {
        let policy = EnvironmentPolicyParser().parse(stored.definition, file: stored.name).policy
        return .object([
            "name": .string(stored.name),
            "definition": .string(stored.definition),
            "sha256": .string(stored.sha256),
            "updated_at": .string(Timestamp.iso8601(ms: stored.updatedAtMs)),
            "updated_by": .string(stored.updatedBy),
            "policy": policy.map(EnvironmentPolicyJSON.json) ?? .null,
        ])
    }
}

extension Result {
    var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }
}
