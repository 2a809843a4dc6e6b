import Hummingbird

/// The API's JSON responses: the text as given (the run views are written by hand, not by
/// `JSONEncoder`), a newline, and no caching.
enum APIResponses {
    static func json(_ status: HTTPResponse.Status, text: String) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text + "\n"))
        )
    }
}
