import GantryAPI
import GantryCore
import GantryPostgres
import GantryRedis
import OpenAPIRuntime

/// `GET /v1/runs/{id}/logs?step=ID[&attempt=N][&follow=true]`: a step's log as plain text, the
/// live stream from Redis, or the excerpt the ledger kept once the stream has expired.
/// `follow` keeps the response open until the attempt ends, woken by `LogTailFeed` (no
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

    func log(_ input: Operations.GetStepLog.Input) async throws -> Operations.GetStepLog.Output {
        let id = input.path.id
        let caller = try APICaller.current()
        let detail = try await runs.readable(id, grant: try APICaller.grant())
        let stepID = input.query.step
        guard let step = detail.steps.first(where: { $0.key.stepID == stepID }) else {
            throw APIError.notFound("run \(id) has no step \(stepID.prefix(64)) (steps: \(detail.steps.map(\.key.stepID).joined(separator: ", ")))")
        }
        let attempt = input.query.attempt ?? step.state.attempt
        guard attempt >= 1, attempt <= step.state.attempt else {
            throw APIError.notFound("step \(stepID) has attempts 1 to \(step.state.attempt)")
        }
        let follow = input.query.follow ?? false
        let key = AttemptKey(step: step.key, attempt: attempt)
        let recorded = detail.attempts.first { $0.key == key && $0.status != .stale }
        // Only a followed log is a long-lived stream; reading a log once takes no place.
        let lines = StepLogLines(
            key: key, follow: follow, recorded: recorded != nil, excerpt: recorded?.logTail, namespace: namespace,
            reads: reads, logs: logs, place: follow ? try streams.acquire(caller.tokenHash) : nil
        )
        return .ok(.init(body: .plainText(HTTPBody(lines, length: .unknown, iterationBehavior: .single))))
    }
}

/// One client's read of one attempt's log, written as the client reads it: what the live stream
/// holds, then (following) each new line until the end marker or the ledger's outcome; the
/// ledger's excerpt when the live stream has expired. A followed log holds its stream place
/// until it is dropped.
struct StepLogLines: AsyncSequence, Sendable {
    typealias Element = ArraySlice<UInt8>

    let key: AttemptKey
    let follow: Bool
    /// Whether the ledger has the attempt's outcome (when the request came).
    let recorded: Bool
    let excerpt: String?
    let namespace: String
    let reads: PostgresPool
    let logs: LogTailFeed
    let place: StreamPlace?

    func makeAsyncIterator() -> Iterator {
        // Subscribed before the first read: a line written between a read and the wait is not missed.
        Iterator(lines: self, subscription: follow ? LogSubscription(feed: logs, key: key) : nil)
    }

    struct Iterator: AsyncIteratorProtocol {
        let lines: StepLogLines
        let subscription: LogSubscription?
        var news: AsyncStream<Void>.Iterator?
        var after = "0"
        var sawAny = false
        var ended = false
        var finished = false
        /// The worker ships its last lines (and the end marker) up to 200 ms after it recorded the outcome.
        var catchUpUntil: ContinuousClock.Instant?

        init(lines: StepLogLines, subscription: LogSubscription?) {
            self.lines = lines
            self.subscription = subscription
            self.news = subscription?.subscription.news.makeAsyncIterator()
        }

        mutating func next() async throws -> ArraySlice<UInt8>? {
            guard !finished else { return nil }
            let (logs, key) = (lines.logs, lines.key)
            while !ended, !Task.isCancelled {
                let entries = try await logs.streams.read(key, after: after, block: nil, on: logs.reader)
                var text = ""
                for (entryID, entry) in entries {
                    after = entryID
                    switch entry {
                    case .line(let line):
                        sawAny = true
                        text += line + "\n"
                    case .end:
                        ended = true
                    }
                }
                if !text.isEmpty { return ArraySlice(text.utf8) }
                if ended || entries.count >= 500 { continue }
                if !lines.follow {
                    // A finished attempt whose stream has no end yet: look again (briefly) for the rest of it.
                    guard lines.recorded, sawAny else { break }
                    let deadline = catchUpUntil ?? ContinuousClock.now + .seconds(2)
                    catchUpUntil = deadline
                    guard ContinuousClock.now < deadline else { break }
                    try await Task.sleep(for: .milliseconds(50))
                    continue
                }
                if entries.isEmpty {
                    // An attempt that logs nothing has no end marker: stop once the ledger has its outcome.
                    let outcome = try await lines.reads.withConnection({ db in try await AttemptLedger().current([key], on: db) })
                    if outcome[key] != nil, try await logs.streams.read(key, after: after, block: nil, on: logs.reader).isEmpty { break }
                }
                // Until the log grows, or the feed's fallback says to look anyway.
                guard await news?.next() != nil else { break }
                // A revoked token's stream ends (checked at most every few seconds).
                if let place = lines.place, !(await place.stillLive(namespace: lines.namespace, reads: lines.reads)) { break }
            }
            finished = true
            lines.place?.release()
            if !sawAny, let excerpt = lines.excerpt, !excerpt.isEmpty {
                return ArraySlice((excerpt + "\n").utf8)
            }
            return nil
        }
    }
}

/// A followed log's subscription for as long as it is read.
final class LogSubscription: Sendable {
    let feed: LogTailFeed
    let subscription: LogTailFeed.Subscription

    init(feed: LogTailFeed, key: AttemptKey) {
        self.feed = feed
        self.subscription = feed.subscribe(key, from: "0")
    }

    deinit { feed.unsubscribe(subscription) }
}
