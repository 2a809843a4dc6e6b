import Foundation
import Hummingbird

/// Request bodies of the JSON endpoints, as the types generated from openapi.yaml (GantryAPI),
/// refused with one line that names the problem.
enum JSONRequestBody {
    /// The body as `T`: 413 past `limit` bytes, 400 naming a missing field or one of the wrong
    /// type, 400 for anything else that is not the object the endpoint takes.
    static func decode<T: Decodable>(_ type: T.Type, from request: Request, limit: Int) async throws -> T {
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: limit)
        } catch {
            throw APIError(status: .contentTooLarge, message: "the request body is larger than \(limit) bytes")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(body.readableBytesView))
        } catch let DecodingError.keyNotFound(key, _) {
            throw APIError.badRequest("the request body has no field '\(key.stringValue)'")
        } catch let DecodingError.typeMismatch(_, context) {
            throw APIError.badRequest("field '\(context.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type")
        } catch {
            throw APIError.badRequest("the request body is not the JSON object this endpoint takes")
        }
    }
}
