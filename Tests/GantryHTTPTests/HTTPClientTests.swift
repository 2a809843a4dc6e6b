import Foundation
import GantryHTTP
import GantryTestSupport
import Hummingbird
import Logging
import NIOCore
import Synchronization
import Testing

private typealias CurlRequest = GantryHTTP.HTTPRequest

/// The libcurl client against a real HTTP server in this process (Hummingbird on
/// loopback): answers, slow answers, big answers, redirects, streaming, cancellation.
@Suite struct HTTPClientTests {
    /// Runs `body` with a local server's base URL; the server stops when `body` returns.
    func withServer(_ body: @Sendable (String) async throws -> Void) async throws {
        let router = Router()
        router.get("/ok") { _, _ in "hello" }
        router.get("/slow") { request, _ -> String in
            let ms = request.uri.queryParameters["ms"].flatMap { Int(String($0)) } ?? 1_000
            try await Task.sleep(for: .milliseconds(ms))
            return "late"
        }
        router.get("/big") { request, _ -> Response in
            let bytes = request.uri.queryParameters["bytes"].flatMap { Int(String($0)) } ?? 0
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(repeating: UInt8(ascii: "x"), count: bytes)))
        }
        router.get("/redirect") { _, _ in Response(status: .found, headers: [.location: "/ok"]) }
        router.post("/echo") { request, _ -> Response in
            var request = request
            let body = try await request.collectBody(upTo: 1 << 20)
            // Echo one request header in a response header.
            let tag = request.headers[.accept] ?? ""
            return Response(status: .created, headers: [.contentLanguage: tag], body: .init(byteBuffer: body))
        }
        router.get("/drip") { _, _ -> Response in
            Response(status: .ok, body: ResponseBody { writer in
                for index in 0..<5 {
                    try await writer.write(ByteBuffer(string: "chunk \(index)\n"))
                    try await Task.sleep(for: .milliseconds(50))
                }
                try await writer.finish(nil)
            })
        }
        try await LocalHTTPServer.serve(router, body)
    }

    @Test func getsAndPostsOneAfterAnotherOnOneClient() async throws {
        try await withServer { base in
            let client = HTTPClient()
            let first = try await client.send(CurlRequest(url: base + "/ok"))
            #expect(first.status == 200 && first.text == "hello")
            let echoed = try await client.send(.text(.post, base + "/echo", #"{"a":1}"#, headers: [("Accept", "t1")]))
            #expect(echoed.status == 201 && echoed.text == #"{"a":1}"# && echoed.header("content-language") == "t1")
            let again = try await client.send(CurlRequest(url: base + "/ok"))
            #expect(again.text == "hello")
        }
    }

    @Test func timeoutsSizeCapsAndRedirectsAreEnforced() async throws {
        try await withServer { base in
            let client = HTTPClient()
            let started = ContinuousClock.now
            await #expect(throws: GantryHTTP.HTTPError.self) {
                try await client.send(CurlRequest(url: base + "/slow?ms=3000", timeout: .milliseconds(300)))
            }
            #expect(ContinuousClock.now - started < .seconds(2))
            do {
                _ = try await client.send(CurlRequest(url: base + "/big?bytes=100000", maxResponseBytes: 1_000))
                Issue.record("a response over the cap was accepted")
            } catch let error as GantryHTTP.HTTPError {
                #expect(error.code == .responseTooLarge)
            }
            // Redirects are not followed unless asked for.
            #expect(try await client.send(CurlRequest(url: base + "/redirect")).status == 302)
            #expect(try await client.send(CurlRequest(url: base + "/redirect", followRedirects: true)).text == "hello")
            // Nothing listens on port 1.
            do {
                _ = try await client.send(CurlRequest(url: "http://127.0.0.1:1/", connectTimeout: .seconds(1)))
                Issue.record("connected to nothing")
            } catch let error as GantryHTTP.HTTPError {
                #expect(error.code == .cannotConnect && error.isTransient)
            }
            await #expect(throws: GantryHTTP.HTTPError.self) { try await client.send(CurlRequest(url: "file:///etc/passwd")) }
        }
    }

    @Test func cancellingTheCallerAbortsTheTransferPromptly() async throws {
        try await withServer { base in
            let client = HTTPClient()
            let started = ContinuousClock.now
            let task = Task { try await client.send(CurlRequest(url: base + "/slow?ms=5000", timeout: .seconds(30))) }
            try await Task.sleep(for: .milliseconds(200))
            task.cancel()
            let result = await task.result
            #expect(ContinuousClock.now - started < .seconds(2))
            guard case .failure(let error as GantryHTTP.HTTPError) = result else {
                Issue.record("the transfer was not aborted: \(result)")
                return
            }
            #expect(error.code == .canceled)
            // The client is usable again afterwards.
            #expect(try await client.send(CurlRequest(url: base + "/ok")).text == "hello")
        }
    }

    @Test func streamingHandsOverChunksAsTheyArrive() async throws {
        try await withServer { base in
            let chunks = Mutex<[String]>([])
            let response = try await HTTPClient().stream(CurlRequest(url: base + "/drip")) { status, bytes in
                if status == 200 { chunks.withLock { $0.append(String(decoding: bytes, as: UTF8.self)) } }
                return true
            }
            #expect(response.status == 200)
            let all = chunks.withLock { $0 }
            #expect(all.joined() == (0..<5).map { "chunk \($0)\n" }.joined())
            #expect(all.count >= 2, "the body came in one piece: \(all)")
        }
    }
}
