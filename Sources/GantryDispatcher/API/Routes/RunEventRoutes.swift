import GantryAPI
import GantryCore
import GantryPostgres
import OpenAPIRuntime

/// `GET /v1/runs/{id}/events`: server-sent events, the run as JSON (event `run`) each time it
/// changes, until it ends. Woken by `RunChangeFeed`; one of the token's open streams.
struct RunEventRoutes: Sendable {
    let namespace: String
    /// Connections for reads only.
    let reads: PostgresPool
    let runs: RunReader
    /// Wakes event streams when their run changes.
    let changes: RunChangeFeed
    /// The live workers, for steps that run and queues nobody takes.
    let fleets: FleetCache
    /// Each token's open streams, and their recheck of its revocation.
    let streams: StreamLimits

    func events(_ input: Operations.FollowRun.Input) async throws -> Operations.FollowRun.Output {
        let id = input.path.id
        let caller = try APICaller.current()
        _ = try await runs.readable(id, grant: try APICaller.grant())
        let place = try streams.acquire(caller.tokenHash)
        let events = RunEvents(id: id, namespace: namespace, reads: reads, changes: changes, fleets: fleets, place: place)
        return .ok(.init(body: .textEventStream(HTTPBody(events, length: .unknown, iterationBehavior: .single))))
    }
}

/// One client's events of one run, written as the client reads them: the run's view whenever it
/// differs from the last one sent, a comment line after 15 s of quiet, the end once the run ends
/// or the token is revoked. It holds its stream place until it is dropped.
struct RunEvents: AsyncSequence, Sendable {
    typealias Element = ArraySlice<UInt8>

    let id: String
    let namespace: String
    let reads: PostgresPool
    let changes: RunChangeFeed
    let fleets: FleetCache
    let place: StreamPlace

    func makeAsyncIterator() -> Iterator {
        // Subscribed before the first read: a change between a read and the wait is not missed.
        Iterator(events: self, subscription: RunChangeSubscription(feed: changes, runID: id))
    }

    struct Iterator: AsyncIteratorProtocol {
        let events: RunEvents
        let subscription: RunChangeSubscription
        var news: AsyncStream<Void>.Iterator
        var last: RunView?
        var quietSince = ContinuousClock.now
        var waitFirst = false
        var ended = false

        init(events: RunEvents, subscription: RunChangeSubscription) {
            self.events = events
            self.subscription = subscription
            self.news = subscription.subscription.changes.makeAsyncIterator()
        }

        mutating func next() async throws -> ArraySlice<UInt8>? {
            while !ended, !Task.isCancelled {
                if waitFirst {
                    // Until the run changes, or the feed's fallback says to look anyway.
                    guard await news.next() != nil else { break }
                    // A revoked token's stream ends (checked at most every few seconds).
                    guard await events.place.stillLive(namespace: events.namespace, reads: events.reads) else { break }
                }
                waitFirst = true
                let (id, namespace) = (events.id, events.namespace)
                guard let detail = try await events.reads.withConnection({ db in try await RunStore().detail(run: id, namespace: namespace, on: db) }) else {
                    break
                }
                let view = RunViews.view(detail, fleet: await events.fleets.current())
                if view != last {
                    last = view
                    quietSince = .now
                    ended = view.isFinished
                    // The run as GET /v1/runs/{id} answers it, written by hand as that answer is (`RunReadAnswer`).
                    return ArraySlice("event: run\ndata: \(view.jsonText)\n\n".utf8)
                }
                if ContinuousClock.now - quietSince > .seconds(15) {
                    // A comment line keeps proxies from closing an idle stream.
                    quietSince = .now
                    return ArraySlice(": still running\n\n".utf8)
                }
            }
            ended = true
            events.place.release()
            return nil
        }
    }
}

/// A subscription to a run's changes for as long as an event stream is read.
final class RunChangeSubscription: Sendable {
    let feed: RunChangeFeed
    let subscription: RunChangeFeed.Subscription

    init(feed: RunChangeFeed, runID: String) {
        self.feed = feed
        self.subscription = feed.subscribe(runID)
    }

    deinit { feed.unsubscribe(subscription) }
}
