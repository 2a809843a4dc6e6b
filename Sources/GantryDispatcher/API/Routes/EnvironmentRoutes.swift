import GantryAPI
import GantryCore
import GantryPostgres
import OpenAPIRuntime

/// `GET /v1/environments` and `GET /v1/environments/{name}`: the environments' policies, as
/// far as the token may read them.
struct EnvironmentRoutes: Sendable {
    let namespace: String
    /// Connections for reads only.
    let reads: PostgresPool
    let store = EnvironmentStore()

    /// The policies of the environments the token may read.
    func list(_ input: Operations.ListEnvironments.Input) async throws -> Operations.ListEnvironments.Output {
        let grant = try APICaller.grant()
        let stored = try await reads.withConnection { db in try await store.list(namespace: namespace, on: db) }
        let visible = stored.filter { grant.decide(.read, environment: $0.name).isSuccess }
        return .ok(.init(body: .json(.init(environments: visible.map(Self.environment)))))
    }

    /// One policy, or what applies when it has none.
    func show(_ input: Operations.GetEnvironment.Input) async throws -> Operations.GetEnvironment.Output {
        let name = input.path.name
        let grant = try APICaller.grant()
        guard case .success = grant.decide(.read, environment: name) else {
            throw APIError.notFound("no environment \(name.prefix(64)) that this token may read")
        }
        guard let stored = try await reads.withConnection({ db in try await store.load(name, namespace: namespace, on: db) }) else {
            return .ok(.init(body: .json(.init(
                name: name, summary: "no policy: runs of \(name) are held only to their pipeline file's gates", policy: nil
            ))))
        }
        return .ok(.init(body: .json(Self.environment(stored))))
    }

    static func environment(_ stored: EnvironmentStore.Stored) -> Components.Schemas.Environment {
        let policy = EnvironmentPolicyParser().parse(stored.definition, file: stored.name).policy
        var container: OpenAPIObjectContainer?
        if case .object(let object)? = policy.map(EnvironmentPolicyJSON.json) { container = JSONObjects.container(object) }
        return .init(
            name: stored.name, definition: stored.definition, sha256: stored.sha256,
            updatedAt: Timestamp.iso8601(ms: stored.updatedAtMs), updatedBy: stored.updatedBy, policy: container
        )
    }
}

private extension Result {
    var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }
}
