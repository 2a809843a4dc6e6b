import Foundation
import GantryCore
import GantryHTTP
import GantryTestSupport
import Synchronization
import Testing

/// A run's event stream (`GET /v1/runs/{id}/events`, what `submit --wait` follows)
/// hears of a change when it is committed, not when it next looks.
@Suite struct RunEventsTests {
    /// The frames of one event stream, with when each arrived.
    final class Frames: Sendable {
        let received = Mutex<[(at: ContinuousClock.Instant, run: RunView)]>([])
        private let buffer = Mutex<[UInt8]>([])

        func take(_ bytes: UnsafeRawBufferPointer) {
            let now = ContinuousClock.now
            let views: [RunView] = buffer.withLock { buffer in
                buffer += bytes
                var views: [RunView] = []
                while let end = Self.frameEnd(buffer) {
                    let frame = String(decoding: buffer[..<end], as: UTF8.self)
                    buffer.removeSubrange(..<(end + 2))
                    for line in frame.split(separator: "\n") where line.hasPrefix("data: ") {
                        if let view = try? JSONDecoder().decode(RunView.self, from: Data(line.dropFirst(6).utf8)) { views.append(view) }
                    }
                }
                return views
            }
            received.withLock { $0 += views.map { (now, $0) } }
        }

        /// When the first frame that satisfies `condition` arrived.
        func first(where condition: (RunView) -> Bool) -> ContinuousClock.Instant? {
            received.withLock { $0.first { condition($0.run) }?.at }
        }

        private static func frameEnd(_ bytes: [UInt8]) -> Int? {
            guard bytes.count >= 2 else { return nil }
            for index in 0..<(bytes.count - 1) where bytes[index] == 10 && bytes[index + 1] == 10 { return index }
            return nil
        }
    }

    @Test func theStreamHearsOfEachChangeAtOnceNotAtItsFallback() async throws {
        let env = try await TestEnvironment.make()
        // With a fallback of a minute, only the announcement of a change can wake the stream in time.
        let (api, dispatcher) = try await APIHarness.start(env, extra: ["--events-fallback", "60s"])
        let worker = try env.worker("w1")
        let lead = try await api.token("lead", [.submitter, .approver], env: ["staging"])
        let pipeline = """
            pipeline: gates
            environment: staging
            steps:
              - { id: g1, kind: approval, with: { timeout: 1h } }
              - { id: g2, kind: approval, needs: [g1], with: { timeout: 1h } }
              - { id: done, kind: noop, needs: [g2] }
            """
        let submitted = try await api.submit(pipeline, token: lead)
        #expect(submitted.status == 201, "\(submitted.json)")
        let id = submitted.json.id
        let frames = Frames()
        let request = HTTPRequest(url: api.base + "/v1/runs/\(id)/events", headers: [("Authorization", "Bearer \(lead)")], timeout: .seconds(120))
        let stream = Task { try await HTTPClient(name: "test-events").stream(request) { _, bytes in frames.take(bytes); return true } }
        defer { stream.cancel() }

        for gate in ["g1", "g2"] {
            let step = { (run: RunView) in run.steps.first { $0.id == gate } }
            try await env.eventually("the stream shows \(gate) waiting") { frames.first { step($0)?.status == "awaiting_approval" } != nil }
            let approved = ContinuousClock.now
            #expect(try await api.call(.post, "/v1/runs/\(id)/approve", token: lead, body: ["step": .string(gate)]).status == 200)
            try await env.eventually("the stream shows \(gate) approved", timeout: .seconds(10)) {
                frames.first { step($0)?.status == "succeeded" } != nil
            }
            let heard = try #require(frames.first { step($0)?.status == "succeeded" })
            #expect(heard - approved < .seconds(5), "\(gate): the stream heard of the approval after \(heard - approved)")
        }
        // The worker's outcome reaches the stream the same way, and the stream ends with the run.
        try await env.eventually("the stream shows the run succeeded", timeout: .seconds(10)) {
            frames.first { $0.status == "succeeded" } != nil
        }
        let finished = try await stream.value
        #expect(finished.status == 200)
        let last = try #require(frames.received.withLock { $0.last?.run })
        #expect(last.status == "succeeded")
        _ = (dispatcher, worker)
    }
}
