import Foundation
import GantryHTTP
import HTTPTypes
import OpenAPIRuntime
import Synchronization

/// The generated API client's transport: each request is one libcurl transfer (GantryHTTP),
/// on a thread of its own, whose body is handed on as it arrives — a followed run's events
/// or a followed log are read while the dispatcher still writes them.
///
/// The transfer outlives `send`, which returns once the status and headers are in: it runs in
/// a task that ends with the transfer, and stops it when the body's reader goes away.
struct CurlTransport: ClientTransport {
    /// GANTRY_CA_FILE: the CA to trust for an https:// API with a private certificate.
    var caFile: String?
    /// The largest request body sent (a pipeline file is at most 1 MiB; the API refuses more).
    var maxRequestBytes = 16 << 20

    /// Operations whose response goes on for as long as the run or the attempt does.
    private static let streaming: Set<String> = ["followRun", "getStepLog"]

    func send(
        _ request: HTTPTypes.HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String
    ) async throws -> (HTTPTypes.HTTPResponse, HTTPBody?) {
        guard let method = GantryHTTP.HTTPRequest.Method(rawValue: request.method.rawValue) else {
            throw CurlTransportError(reason: "\(request.method.rawValue) is not a method this client sends")
        }
        var base = baseURL.absoluteString
        if base.hasSuffix("/") { base.removeLast() }
        var outgoing = GantryHTTP.HTTPRequest(
            method: method,
            url: base + (request.path ?? "/"),
            headers: request.headerFields.map { (name: $0.name.rawName, value: $0.value) },
            timeout: Self.streaming.contains(operationID) ? .seconds(86_400 * 7) : .seconds(30)
        )
        outgoing.caFile = caFile
        if let body {
            outgoing.body = try await [UInt8](collecting: body, upTo: maxRequestBytes)
        }

        let (chunks, chunksIn) = AsyncThrowingStream.makeStream(of: [UInt8].self)
        let head = HeadHandOver()
        let transfer = Task {
            let client = HTTPClient(name: "gantry-cli-\(operationID)")
            do {
                _ = try await client.stream(outgoing, onHead: { status, headers in
                    head.resume(with: .success(Self.response(status: status, headers: headers)))
                }, onData: { _, bytes in
                    chunksIn.yield(Array(bytes))
                    return true
                })
                chunksIn.finish()
            } catch {
                head.resume(with: .failure(error))
                chunksIn.finish(throwing: error)
            }
        }
        chunksIn.onTermination = { _ in transfer.cancel() }
        let response = try await withTaskCancellationHandler {
            try await head.wait()
        } onCancel: {
            transfer.cancel()
        }
        let length = response.headerFields[.contentLength].flatMap { Int64($0) }.map { HTTPBody.Length.known($0) } ?? .unknown
        return (response, HTTPBody(chunks, length: length, iterationBehavior: .single))
    }

    private static func response(status: Int, headers: [(name: String, value: String)]) -> HTTPTypes.HTTPResponse {
        var fields = HTTPFields()
        for header in headers {
            if let name = HTTPField.Name(header.name) { fields.append(HTTPField(name: name, value: header.value)) }
        }
        return HTTPTypes.HTTPResponse(status: .init(code: status), headerFields: fields)
    }
}

/// The response's head, handed from the transfer's thread to `send` once.
private final class HeadHandOver: Sendable {
    private enum State {
        case waiting(CheckedContinuation<HTTPTypes.HTTPResponse, any Error>?)
        case arrived(Result<HTTPTypes.HTTPResponse, any Error>)
        case delivered
    }

    private let state = Mutex(State.waiting(nil))

    func resume(with result: Result<HTTPTypes.HTTPResponse, any Error>) {
        let waiter: CheckedContinuation<HTTPTypes.HTTPResponse, any Error>? = state.withLock { state in
            guard case .waiting(let waiter) = state else { return nil }
            state = waiter == nil ? .arrived(result) : .delivered
            return waiter
        }
        waiter?.resume(with: result)
    }

    func wait() async throws -> HTTPTypes.HTTPResponse {
        try await withCheckedThrowingContinuation { continuation in
            let arrived: Result<HTTPTypes.HTTPResponse, any Error>? = state.withLock { state in
                if case .arrived(let result) = state {
                    state = .delivered
                    return result
                }
                state = .waiting(continuation)
                return nil
            }
            if let arrived { continuation.resume(with: arrived) }
        }
    }
}

/// A request the transport cannot send.
struct CurlTransportError: Error, CustomStringConvertible {
    let reason: String
    var description: String { reason }
}
