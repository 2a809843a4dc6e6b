import GantryCore
import GantryPostgres
import Hummingbird

/// `GET /v1/environments` and `GET /v1/environments/{name}`: the environments' policies, as
/// far as the token may read them.
struct EnvironmentRoutes: Sendable {
    let namespace: String
    /// Connections for reads only.
    let reads: PostgresPool
    let store = EnvironmentStore()

    func addRoutes(to group: RouterGroup<GantryRequestContext>, authenticator: Authenticator) {
        group.authenticated("environments", by: authenticator).get(use: list)
        group.authenticated("environments", by: authenticator).get(":name", use: show)
    }

    /// The policies of the environments the token may read.
    func list(_ request: Request, context: GantryRequestContext) async throws -> Response {
        let grant = try context.requireGrant()
        let stored = try await reads.withConnection { db in try await store.list(namespace: namespace, on: db) }
        let visible = stored.filter { grant.decide(.read, environment: $0.name).isSuccess }
        let items = visible.map { Self.environmentJSON($0).jsonText }
        return APIResponses.json(.ok, text: "{\"environments\":[" + items.joined(separator: ",") + "]}")
    }

    /// One policy, or what applies when it has none.
    func show(_ request: Request, context: GantryRequestContext) async throws -> Response {
        let name = try context.parameters.require("name")
        let grant = try context.requireGrant()
        guard case .success = grant.decide(.read, environment: name) else {
            throw APIError.notFound("no environment \(name.prefix(64)) that this token may read")
        }
        guard let stored = try await reads.withConnection({ db in try await store.load(name, namespace: namespace, on: db) }) else {
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

private extension Result {
    var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }
}
