import GantryPostgres
import GantryRedis
import Hummingbird

/// `GET /healthz` (the process answers) and `GET /readyz` (Postgres and Redis answer it),
/// for load balancers and orchestrators: no token.
struct HealthRoutes: Sendable {
    /// Connections for reads: what a request would wait for.
    let reads: PostgresPool
    let redis: RedisConnection

    func addRoutes(to router: some RouterMethods<GantryRequestContext>) {
        router.get("/healthz") { _, _ in APIResponses.json(.ok, text: #"{"status":"ok"}"#) }
        router.get("/readyz", use: ready)
    }

    func ready(_ request: Request, context: GantryRequestContext) async throws -> Response {
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
        return APIResponses.json(.ok, text: #"{"status":"ready"}"#)
    }
}
