import GantryAPI
import GantryPostgres
import GantryRedis
import OpenAPIRuntime

/// `GET /healthz` (the process answers), `GET /readyz` (Postgres and Redis answer it), for
/// load balancers and orchestrators, and `GET /openapi.yaml`: no token.
struct HealthRoutes: Sendable {
    /// Connections for reads: what a request would wait for.
    let reads: PostgresPool
    let redis: RedisConnection

    func health() -> Operations.Health.Output {
        .ok(.init(body: .json(.init(status: .ok))))
    }

    func ready() async throws -> Operations.Ready.Output {
        do {
            _ = try await reads.withConnection({ db in try await db.run("SELECT 1") })
        } catch {
            throw APIError.unavailable("Postgres is not reachable: \(error)")
        }
        do {
            try await redis.ping()
        } catch {
            throw APIError.unavailable("Redis is not reachable: \(error)")
        }
        return .ok(.init(body: .json(.init(status: .ready))))
    }

    func document() -> Operations.OpenAPIDocument.Output {
        .ok(.init(body: .yaml(HTTPBody(OpenAPIDocument.yaml + "\n"))))
    }
}
