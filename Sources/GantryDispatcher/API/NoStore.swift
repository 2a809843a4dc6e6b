import Hummingbird

/// `Cache-Control: no-store` on every answer, refusals included: runs, logs and policies
/// change, and are read with a token no shared cache may keep them for.
struct NoStore<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            response = try error.response(from: request, context: context)
        }
        response.headers[.cacheControl] = "no-store"
        return response
    }
}
