import GantryCore
import GantryPostgres
import GantryRedis
import GantryRuntime
import Logging
import ServiceLifecycle

/// One lane of applying outcomes: reads result events (each a worker's batch of recorded
/// outcomes) from the events stream's consumer group, applies them to their runs through
/// `RunStore` (under row locks; `RunMachine` decides), carries out what the transitions ask
/// (enqueue, schedule, cancel), and acknowledges the events. `--lanes` of them run per
/// replica, each with its connections; events a crashed replica or lane held are claimed
/// after 30 s.
struct EventApplier: Service {
    let state: DispatcherState
    let lane: Int

    /// Events read at once by a lane. An event holds the batch of outcomes one worker recorded
    /// together (tens under load), so a read is about one transaction's worth, and a backlog is
    /// shared between the lanes (and replicas) instead of being taken whole by the first reader.
    static let eventsPerRead = 32

    /// The events consumer of a lane: lane 0 keeps the name a replica had before it had lanes,
    /// so the events it held before an upgrade are its own again after it.
    static func consumer(lane: Int, replica: String) -> String {
        lane == 0 ? "dispatcher-\(replica)" : "dispatcher-\(replica)#\(lane + 1)"
    }

    func run() async throws {
        let state = state
        let role = lane == 0 ? "apply" : "apply-\(lane + 1)"
        let reader = state.redis(lane == 0 ? "events" : "events-\(lane + 1)", commandTimeout: .seconds(8))
        let writer = state.redis(role)
        let db = state.postgres(role)
        await withGracefulShutdownHandler {
            await applyLoop(reader: reader, writer: writer, db: db)
        } onGracefulShutdown: {
            reader.interrupt()
        }
    }

    private func applyLoop(reader: RedisConnection, writer: RedisConnection, db: PostgresConnection) async {
        let state = state
        let events = ResultEvents(keys: state.configuration.keys)
        let consumer = Self.consumer(lane: lane, replica: state.configuration.id)
        await state.untilSuccess("prepare the events stream") { () throws(RedisError) in
            try await events.prepare(on: writer)
        }
        // First the events this lane was given before a restart and never acknowledged.
        var pending = true
        // Lanes look for a crashed replica's events at different times.
        var lastClaim = ContinuousClock.now + .seconds(lane)
        var backoff = Backoff(first: .milliseconds(100))
        while !DispatcherState.isStopping {
            do {
                var read = try await events.read(
                    consumer: consumer, count: Self.eventsPerRead, block: .seconds(2), pending: pending, on: reader
                )
                if pending && read.isEmpty { pending = false }
                if ContinuousClock.now - lastClaim > .seconds(10) {
                    // Events a crashed replica (or a lane a restart did not bring back) was holding.
                    lastClaim = .now
                    read += try await events.claimStale(consumer: consumer, minIdle: .seconds(30), count: Self.eventsPerRead, on: writer)
                }
                backoff.succeeded()
                guard !read.isEmpty else { continue }
                var results: [AttemptResult] = []
                results.reserveCapacity(read.count)
                for event in read {
                    let (outcomes, malformed) = AttemptResult.outcomes(inEvent: event.fields)
                    results += outcomes
                    if malformed > 0 {
                        state.logger.warning("ignored an event, or part of one, that is not an attempt outcome", metadata: [
                            "gantry.event": "\(event.id)", "gantry.count": "\(malformed)",
                        ])
                    }
                }
                // An event holds a worker's batch: apply at most eventBatch outcomes per transaction.
                var start = 0
                while start < results.count {
                    let end = min(start + state.configuration.eventBatch, results.count)
                    await state.apply(Array(results[start..<end]), writer: writer, db: db)
                    start = end
                }
                await state.untilSuccess("acknowledge events") { () throws(RedisError) in
                    try await events.acknowledge(read.map(\.id), on: writer)
                }
                state.logger.debug("applied outcomes", metadata: [
                    "gantry.consumer": "\(consumer)", "gantry.events": "\(read.count)", "gantry.count": "\(results.count)",
                ])
            } catch {
                if DispatcherState.isStopping { break }
                if backoff.failures == 0 { state.logger.warning("cannot read events; retrying", metadata: ["error": "\(error)"]) }
                await backoff.wait()
            }
        }
    }
}
