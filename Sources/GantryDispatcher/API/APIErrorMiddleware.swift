import GantryPostgres
import Hummingbird
import Logging
import OpenAPIRuntime

/// Turns every failure into an `APIError` with one line. What the generated server could not
/// read (a body that is not the operation's JSON, a parameter of the wrong type) is 400 naming
/// it; an unreachable database is 503; anything else is 500 and logged. Refusals (`APIError`)
/// and Hummingbird's own errors (an unknown path's 404) pass through unchanged.
struct APIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as ServerError {
            // The generated server wraps what its handler threw, and what stopped it reading the input.
            if error.operationInput == nil, !(error.underlyingError is APIError) {
                throw APIError.badRequest(Self.unreadable(error.underlyingError))
            }
            throw Self.phrased(error.underlyingError, context: context)
        } catch {
            throw Self.phrased(error, context: context)
        }
    }

    private static func phrased(_ error: any Error, context: Context) -> any Error {
        switch error {
        case let error as any HTTPResponseError:
            return error
        case let error as PostgresError where error.isConnectionFailure:
            return APIError.unavailable("the database is not reachable; retry shortly")
        default:
            context.logger.error("request failed", metadata: ["error": "\(error)"])
            return APIError.internalError
        }
    }

    /// One line for a request the generated server could not read.
    static func unreadable(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _):
            return "the request body has no field '\(key.stringValue)'"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "field '\(context.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type"
        case is DecodingError:
            return "the request body is not the JSON object this endpoint takes"
        default:
            // The runtime's own words: "Missing required query parameter named: step", …
            return String(describing: error).split(whereSeparator: \.isNewline).first.map(String.init) ?? "the request cannot be read"
        }
    }
}
