import GantryCore
import GantryPostgres
import Hummingbird

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
    let store = RunStore()

    func addRoutes(to group: RouterGroup<GantryRequestContext>, authenticator: Authenticator) {
        group.authenticated("read", by: authenticator).get(":id/events", use: events)
    }

    func events(_ request: Request, context: GantryRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        let grant = try context.requireGrant()
        _ = try await runs.readable(id, grant: grant)
        let place = try streams.acquire(try context.requireTokenHash())
        let store = store, namespace = namespace, reads = reads, changes = changes, fleets = fleets
        let body = ResponseBody { writer in
            defer { place.release() }
            // Subscribed before the first read: a change between a read and the wait is not missed.
            let subscription = changes.subscribe(id)
            defer { changes.unsubscribe(subscription) }
            // A child task: cancelled and awaited when this body returns or throws.
            async let _ = changes.fallbackTimer(subscription)
            var news = subscription.changes.makeAsyncIterator()
            var last: RunView?
            var quietSince = ContinuousClock.now
            while !Task.isCancelled {
                guard let detail = try await reads.withConnection({ db in try await store.detail(run: id, namespace: namespace, on: db) }) else { break }
                let view = RunViews.view(detail, fleet: await fleets.current())
                if view != last {
                    try await writer.write(ByteBuffer(string: "event: run\ndata: \(view.jsonText)\n\n"))
                    last = view
                    quietSince = .now
                    if view.isFinished { break }
                } else if ContinuousClock.now - quietSince > .seconds(15) {
                    // A comment line keeps proxies from closing an idle stream.
                    try await writer.write(ByteBuffer(string: ": still running\n\n"))
                    quietSince = .now
                }
                // Until the run changes, or the fallback says to look anyway.
                guard await news.next() != nil else { break }
                // A revoked token's stream ends (checked at most every few seconds).
                guard await place.stillLive(namespace: namespace, reads: reads) else { break }
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-store"],
            body: body
        )
    }
}
