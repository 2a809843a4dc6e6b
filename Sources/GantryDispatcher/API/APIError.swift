import Foundation
import GantryCore
import Hummingbird

/// A refused request: its status and one line saying why and what to do. Routes throw it and
/// Hummingbird's router renders it (`HTTPResponseError`) as `{"error": …, "details": […]}`.
struct APIError: Error, Sendable {
    var status: HTTPResponse.Status
    var message: String
    /// Further lines (every problem of a pipeline that does not validate).
    var details: [String] = []
    /// Seconds for `Retry-After` (429).
    var retryAfter: Int?

    static func badRequest(_ message: String, details: [String] = []) -> APIError { APIError(status: .badRequest, message: message, details: details) }
    static func unauthorized(_ message: String) -> APIError { APIError(status: .unauthorized, message: message) }
    static func forbidden(_ message: String) -> APIError { APIError(status: .forbidden, message: message) }
    static func notFound(_ message: String) -> APIError { APIError(status: .notFound, message: message) }
    static func conflict(_ message: String) -> APIError { APIError(status: .conflict, message: message) }
    static func gate(_ message: String) -> APIError { APIError(status: .unprocessableContent, message: message) }
    static func unavailable(_ message: String) -> APIError { APIError(status: .serviceUnavailable, message: message) }
    static let internalError = APIError(status: .internalServerError, message: "internal error; the dispatcher's log has the details")
}

extension APIError: HTTPResponseError {
    /// The JSON body `{"error": message}`, with `details` when there are any, and `Retry-After` for a 429.
    func response(from request: Request, context: some RequestContext) -> Response {
        var object: [String: JSONValue] = ["error": .string(message)]
        if !details.isEmpty { object["details"] = .array(details.map(JSONValue.string)) }
        var response = Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: JSONValue.object(object).jsonText + "\n"))
        )
        if let retryAfter { response.headers[.retryAfter] = String(retryAfter) }
        return response
    }
}
