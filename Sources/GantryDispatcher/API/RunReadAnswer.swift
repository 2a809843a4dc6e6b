import Foundation
import GantryCore
import HTTPTypes
import OpenAPIRuntime

/// The one answer the API writes by hand: `GET /v1/runs/{id}`, the most frequent request (CI
/// polling, dashboards). The generated server would encode the run with Foundation's
/// `JSONEncoder`, which was a tenth of the dispatcher's CPU when runs were last served that way;
/// this middleware, after `AuthenticationMiddleware`, answers the operation itself with the same
/// JSON (`RunView.jsonText`: keys sorted, fields without a value left out), and
/// `APIHandlers.getRun` stays the typed description of it. docs/benchmarks.md (twelfth session)
/// has the read's throughput before and after the generated server, and what is not yet measured.
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
