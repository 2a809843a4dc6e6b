import Foundation
import GantryCore
import HTTPTypes
import OpenAPIRuntime

/// The one answer the API writes by hand: `GET /v1/runs/{id}`, the most frequent request (CI
/// polling, dashboards). The generated server would encode the run with Foundation's
/// `JSONEncoder`; measured again against the hand-written `RunView.jsonText` (docs/benchmarks.md,
/// twelfth session), that cost 38 % of the throughput of this read. So this middleware, after
/// `AuthenticationMiddleware`, answers the operation itself with the same JSON (keys sorted,
/// fields without a value left out); `APIHandlers.getRun` stays the typed description of it.
struct RunReadAnswer: ServerMiddleware {
    let queries: RunQueryRoutes

    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, metadata: ServerRequestMetadata, operationID: String,
        next: (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        guard operationID == "getRun", let raw = metadata.pathParameters["id"] else {
            return try await next(request, body, metadata)
        }
        let view = try await queries.view(raw.removingPercentEncoding ?? String(raw))
        var response = HTTPResponse(status: .ok)
        response.headerFields[.contentType] = "application/json; charset=utf-8"
        return (response, HTTPBody(view.jsonText + "\n"))
    }
}
