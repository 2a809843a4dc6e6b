import Foundation
import GantryCore
import Hummingbird

/// A refused request: its status and one line saying why and what to do.
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

    var response: Response {
        var object: [String: JSONValue] = ["error": .string(message)]
        if !details.isEmpty { object["details"] = .array(details.map(JSONValue.string)) }
        var response = APIResponses.json(status, text: JSONValue.object(object).jsonText)
        if let retryAfter { response.headers[.retryAfter] = String(retryAfter) }
        return response
    }
}

enum APIResponses {
    static func json(_ status: HTTPResponse.Status, text: String) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text + "\n"))
        )
    }
}
