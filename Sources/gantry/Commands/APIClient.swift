import ArgumentParser
import Foundation
import GantryCore
import GantryHTTP
import Synchronization

/// Where the dispatcher's API is and the token to use, for the run commands.
struct APIOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The dispatcher's API.", discussion: "Default: $GANTRY_URL, else http://127.0.0.1:8080."))
    var url: String?

    @Option(name: .customLong("token-file"), help: ArgumentHelp("A file holding the API token.", discussion: "Default: $GANTRY_TOKEN. The token is never accepted as a flag (it would show in ps)."))
    var tokenFile: String?

    func client() throws -> APIClient {
        let base = (url ?? ProcessInfo.processInfo.environment["GANTRY_URL"] ?? "http://127.0.0.1:8080")
        guard base.hasPrefix("http://") || base.hasPrefix("https://") else {
            throw UsageError("--url / GANTRY_URL '\(base)': give http://HOST:PORT or https://HOST:PORT")
        }
        var token = ProcessInfo.processInfo.environment["GANTRY_TOKEN"]
        if let tokenFile {
            token = try InputFile.read(tokenFile, flag: "--token-file", limit: 64 << 10).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard let token, !token.isEmpty else {
            throw UsageError("no API token: set GANTRY_TOKEN or pass --token-file (an admin makes one with gantry token create)")
        }
        let caFile = ProcessInfo.processInfo.environment["GANTRY_CA_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        if let caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            throw UsageError("GANTRY_CA_FILE \(caFile): cannot read it (a PEM file of the CA that signed the API's certificate)")
        }
        return APIClient(base: base.hasSuffix("/") ? String(base.dropLast()) : base, token: token, caFile: caFile)
    }
}

/// A refusal or failure from the API, as one line.
struct APIFailure: Error, CustomStringConvertible {
    /// The HTTP status, 0 when the API was not reached.
    let status: Int
    let message: String
    var description: String { message }

    /// A refusal (the request was understood and said no), as opposed to an outage.
    var isRefusal: Bool { (400..<500).contains(status) }
}

/// The dispatcher's API over libcurl.
struct APIClient: Sendable {
    let base: String
    let token: String
    /// GANTRY_CA_FILE: the CA to trust for an https:// API with a private certificate.
    var caFile: String?
    let http = HTTPClient(name: "gantry-cli-http")

    private var headers: [(name: String, value: String)] {
        [("Authorization", "Bearer \(token)"), ("Accept", "application/json")]
    }

    /// Sends a request and decodes the JSON answer; a non-2xx answer throws its `error` line.
    func call<T: Decodable>(_ method: HTTPRequest.Method, _ path: String, body: [String: JSONValue]? = nil, as type: T.Type) async throws -> (status: Int, value: T) {
        var request = HTTPRequest(method: method, url: base + path, headers: headers, timeout: .seconds(30))
        request.caFile = caFile
        if let body {
            request.headers.append(("Content-Type", "application/json"))
            request.body = Array(JSONValue.object(body).jsonText.utf8)
        }
        let response: HTTPResponse
        do {
            response = try await http.send(request)
        } catch {
            throw APIFailure(status: 0, message: "cannot reach the Gantry API at \(base): \(error)")
        }
        guard (200..<300).contains(response.status) else {
            let message = JSONValue.parseObject(response.text)?["error"]?.stringValue ?? "HTTP \(response.status) from \(base)\(path)"
            throw APIFailure(status: response.status, message: message)
        }
        do {
            return (response.status, try JSONDecoder().decode(T.self, from: Data(response.body)))
        } catch {
            throw APIFailure(status: response.status, message: "the API at \(base) answered something this CLI cannot read (\(error))")
        }
    }

    /// Follows a run's server-sent events, calling `onRun` for each new state, until the run ends.
    /// A broken stream (a dispatcher restart) is picked up again; polling is the fallback.
    func follow(_ runID: String, onRun: (RunView) -> Void) async throws -> RunView {
        var failures = 0
        while true {
            let (stream, continuation) = AsyncStream.makeStream(of: [UInt8].self)
            var request = HTTPRequest(
                url: base + "/v1/runs/\(runID)/events",
                headers: [("Authorization", "Bearer \(token)"), ("Accept", "text/event-stream")],
                timeout: .seconds(86_400 * 7)
            )
            request.caFile = caFile
            let client = HTTPClient(name: "gantry-cli-events")
            async let transfer: HTTPResponse = {
                defer { continuation.finish() }
                return try await client.stream(request) { status, bytes in
                    if status == 200 { continuation.yield(Array(bytes)) }
                    return true
                }
            }()
            var buffer: [UInt8] = []
            var last: RunView?
            for await chunk in stream {
                buffer += chunk
                while let end = Self.eventEnd(in: buffer) {
                    let event = String(decoding: buffer[..<end], as: UTF8.self)
                    buffer.removeSubrange(..<(end + 2))
                    for line in event.split(separator: "\n") where line.hasPrefix("data: ") {
                        if let view = try? JSONDecoder().decode(RunView.self, from: Data(line.dropFirst(6).utf8)) {
                            last = view
                            failures = 0
                            onRun(view)
                        }
                    }
                }
            }
            let response = try? await transfer
            if let last, last.isFinished { return last }
            if let response, !(200..<300).contains(response.status) {
                // A refusal (401, 403, 404) will not get better by asking again.
                let view = try await call(.get, "/v1/runs/\(runID)", as: RunView.self).value
                if view.isFinished { return view }
            }
            failures += 1
            try await Task.sleep(for: .milliseconds(min(5_000, 250 * failures)))
            if failures > 3 {
                // Fall back to one poll so progress keeps showing while the stream is away.
                let view = try await call(.get, "/v1/runs/\(runID)", as: RunView.self).value
                onRun(view)
                if view.isFinished { return view }
            }
        }
    }

    /// Copies a step's log to standard output as it arrives; a refusal throws its `error` line.
    func log(_ runID: String, step: String, attempt: Int?, follow: Bool) async throws {
        var path = "/v1/runs/\(runID)/logs?step=\(step)"
        if let attempt { path += "&attempt=\(attempt)" }
        if follow { path += "&follow=1" }
        let errorBody = ErrorBody()
        var request = HTTPRequest(url: base + path, headers: [("Authorization", "Bearer \(token)")], timeout: .seconds(86_400))
        request.caFile = caFile
        let response: HTTPResponse
        do {
            response = try await HTTPClient(name: "gantry-cli-logs").stream(request) { status, bytes in
                if status == 200 {
                    StandardOutput.write(bytes)
                } else {
                    errorBody.append(bytes)
                }
                return true
            }
        } catch {
            throw APIFailure(status: 0, message: "cannot reach the Gantry API at \(base): \(error)")
        }
        guard response.status == 200 else {
            let message = JSONValue.parseObject(errorBody.text)?["error"]?.stringValue ?? "HTTP \(response.status) from \(base)\(path)"
            throw APIFailure(status: response.status, message: message)
        }
    }

    private static func eventEnd(in buffer: [UInt8]) -> Int? {
        guard buffer.count >= 2 else { return nil }
        for index in 0..<(buffer.count - 1) where buffer[index] == 10 && buffer[index + 1] == 10 { return index }
        return nil
    }
}

/// The body of a refused streaming request, gathered from the transfer's thread.
private final class ErrorBody: Sendable {
    private let bytes = Mutex<[UInt8]>([])
    func append(_ chunk: UnsafeRawBufferPointer) { bytes.withLock { $0 += chunk } }
    var text: String { bytes.withLock { String(decoding: $0, as: UTF8.self) } }
}
