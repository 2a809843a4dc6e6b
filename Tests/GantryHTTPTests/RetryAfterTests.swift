import Foundation
import GantryHTTP
import Testing

@Suite struct RetryAfterTests {
    func response(_ value: String?) -> HTTPResponse {
        HTTPResponse(status: 429, headers: value.map { [("retry-after", $0)] } ?? [], body: [], elapsed: .zero)
    }

    @Test func secondsAndHTTPDatesAreUnderstoodAndAnythingElseIsIgnored() {
        let now = Date(timeIntervalSince1970: 1_795_802_827) // Fri, 27 Nov 2026 18:07:07 GMT
        #expect(response("120").retryAfter(now: now) == .seconds(120))
        #expect(response(" 0 ").retryAfter(now: now) == .zero)
        #expect(response("Fri, 27 Nov 2026 18:07:37 GMT").retryAfter(now: now) == .seconds(30))
        #expect(response("Fri, 27 Nov 2026 18:00:00 GMT").retryAfter(now: now) == .zero, "a date in the past means now")
        for ignored in [nil, "", "-5", "soon", "1.5"] {
            #expect(response(ignored).retryAfter(now: now) == nil, "\(ignored ?? "nil")")
        }
    }

    @Test func onlyTooManyRequestsAndServerErrorsAreRetried() {
        #expect(HTTPRetry.isRetryable(status: 429))
        #expect(HTTPRetry.isRetryable(status: 500) && HTTPRetry.isRetryable(status: 503) && HTTPRetry.isRetryable(status: 599))
        for status in [200, 204, 301, 400, 401, 403, 404, 409, 422] {
            #expect(!HTTPRetry.isRetryable(status: status), "\(status)")
        }
    }
}
