import GantryPostgres
import Hummingbird
import Logging

/// Turns every failure a route did not phrase into an `APIError` with one line: an unreachable
/// database is 503, anything else is 500 and logged. Refusals (`APIError`) and Hummingbird's own
/// errors (an unknown path's 404) pass through unchanged.
struct APIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as any HTTPResponseError {
            throw error
        } catch let error as PostgresError where error.isConnectionFailure {
            throw APIError.unavailable("the database is not reachable; retry shortly")
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(error)"])
            throw APIError.internalError
        }
    }
}
