import Foundation
import Hummingbird

/// What every body the API takes must be, checked before any handler reads it (the generated
/// server collects a JSON body whole): JSON (415 when a `Content-Type` says something else)
/// of at most `limit` bytes (413).
struct JSONRequestBodies<Context: RequestContext>: RouterMiddleware {
    let limit: Int

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.method == .post || request.method == .put || request.method == .patch else {
            return try await next(request, context)
        }
        if let type = request.headers[.contentType],
           type.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() != "application/json" {
            throw APIError(status: .unsupportedMediaType,
                message: "Content-Type \(type.prefix(80)): the API takes application/json (curl: -H 'Content-Type: application/json')")
        }
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: limit)
        } catch {
            throw APIError(status: .contentTooLarge, message: "the request body is larger than \(limit) bytes")
        }
        request.body = RequestBody(buffer: body)
        return try await next(request, context)
    }
}
