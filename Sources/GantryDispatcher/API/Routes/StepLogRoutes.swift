import GantryCore
import GantryPostgres
import GantryRedis
import Hummingbird

/// `GET /v1/runs/{id}/logs?step=ID[&attempt=N][&follow=1]`: a step's log as plain text, the
/// live stream from Redis, or the excerpt the ledger kept once the stream has expired.
/// `follow=1` keeps the response open until the attempt ends, woken by `LogTailFeed` (no
/// connection or thread of its own); it is one of the token's open streams.
struct StepLogRoutes: Sendable {
    let namespace: String
    /// Connections for reads only.
    let reads: PostgresPool
    let runs: RunReader
    /// Wakes followed logs when they grow, and lends them a connection to read.
    let logs: LogTailFeed
    /// Each token's open streams, and their recheck of its revocation.
    let streams: StreamLimits

    func addRoutes(to group: RouterGroup<GantryRequestContext>, authenticator: Authenticator) {
        group.authenticated("read", by: authenticator).get(":id/logs", use: log)
    }

    func log(_ request: Request, context: GantryRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        let grant = try context.requireGrant()
        let hash = try context.requireTokenHash()
        let detail = try await runs.readable(id, grant: grant)
        let query = request.uri.queryParameters
        guard let stepID = query["step"].map(String.init) else {
            throw APIError.badRequest("name the step: /v1/runs/\(id)/logs?step=ID (steps: \(detail.steps.map(\.key.stepID).joined(separator: ", ")))")
        }
        guard let step = detail.steps.first(where: { $0.key.stepID == stepID }) else {
            throw APIError.notFound("run \(id) has no step \(stepID.prefix(64))")
        }
        let attempt = query["attempt"].flatMap { Int(String($0)) } ?? step.state.attempt
        guard attempt >= 1, attempt <= step.state.attempt else {
            throw APIError.notFound("step \(stepID) has attempts 1 to \(step.state.attempt)")
        }
        let follow = query["follow"].map { $0 == "1" || $0 == "true" } ?? false
        let key = AttemptKey(step: step.key, attempt: attempt)
        let recordedAttempt = detail.attempts.first { $0.key == key && $0.status != .stale }
        let excerpt = recordedAttempt?.logTail
        let logs = logs, reads = reads, namespace = namespace
        // Only a followed log is a long-lived stream; reading a log once takes no place.
        let place = follow ? try streams.acquire(hash) : nil
        let body = ResponseBody { writer in
            defer { place?.release() }
            // Subscribed before the first read: a line written between a read and the wait is not missed.
            let subscription = follow ? logs.subscribe(key, from: "0") : nil
            defer { if let subscription { logs.unsubscribe(subscription) } }
            // A child task: cancelled and awaited when this body returns or throws.
            async let _ = logs.fallbackTimer(subscription)
            var news = subscription?.news.makeAsyncIterator()
            var after = "0"
            var sawAny = false
            var ended = false
            // The worker ships its last lines (and the end marker) up to 200 ms after it recorded the outcome.
            var catchUpUntil: ContinuousClock.Instant?
            while !ended && !Task.isCancelled {
                let entries = try await logs.streams.read(key, after: after, block: nil, on: logs.reader)
                for (entryID, entry) in entries {
                    after = entryID
                    switch entry {
                    case .line(let line):
                        sawAny = true
                        try await writer.write(ByteBuffer(string: line + "\n"))
                    case .end:
                        ended = true
                    }
                }
                if ended || entries.count >= 500 { continue }
                if !follow {
                    // A finished attempt whose stream has no end yet: look again (briefly) for the rest of it.
                    guard recordedAttempt != nil, sawAny else { break }
                    let deadline = catchUpUntil ?? ContinuousClock.now + .seconds(2)
                    catchUpUntil = deadline
                    guard ContinuousClock.now < deadline else { break }
                    try await Task.sleep(for: .milliseconds(50))
                    continue
                }
                if entries.isEmpty {
                    // An attempt that logs nothing has no end marker: stop once the ledger has its outcome.
                    let recorded = try await reads.withConnection({ db in try await AttemptLedger().current([key], on: db) })
                    if recorded[key] != nil, try await logs.streams.read(key, after: after, block: nil, on: logs.reader).isEmpty { break }
                }
                // Until the log grows, or the fallback says to look anyway.
                guard await news?.next() != nil else { break }
                // A revoked token's stream ends (checked at most every few seconds).
                if let place, !(await place.stillLive(namespace: namespace, reads: reads)) { break }
            }
            if !sawAny, let excerpt, !excerpt.isEmpty {
                try await writer.write(ByteBuffer(string: excerpt + "\n"))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8", .cacheControl: "no-store"], body: body)
    }
}
