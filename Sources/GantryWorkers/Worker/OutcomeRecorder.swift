import GantryCore
import GantryPostgres
import GantryRedis
import GantryRuntime
import Logging
import ServiceLifecycle
import Synchronization

/// Commits finished attempts to the ledger in batches (group commit), then publishes their
/// result events and acknowledges their deliveries in one pipelined `MULTI`: an attempt is
/// acknowledged only once its row is durable. Neither step gives up while Postgres or Redis
/// is away; the lease keeper keeps the leases alive meanwhile.
///
/// It ends once the runner has closed the mailbox (after a drain) and every outcome in it
/// is recorded and acknowledged.
struct OutcomeRecorder: Service {
    let state: WorkerState
    private let trims = TrimSchedule()

    init(state: WorkerState) {
        self.state = state
    }

    func run() async throws {
        while let batch = await state.finished.take(max: state.configuration.maxBatch) {
            await record(batch)
        }
        // Everything is recorded; stay until the group asks (the services stop in order).
        try? await gracefulShutdown()
    }

    /// Acknowledged entries of these kinds not trimmed yet, for the lease keeper to trim when
    /// the worker goes quiet.
    func trimLeftovers() -> Set<String> { trims.due(adding: []) }

    /// Notes kinds whose trim failed, to try again.
    func trimFailed(_ kinds: Set<String>) { trims.retry(kinds) }

    private func record(_ batch: [FinishedAttempt]) async {
        let state = state
        // A delivery whose lease the lease keeper found lost can only be recorded stale.
        let lost = state.book.leaseLost(among: batch.map(\.deliveryID))
        let results = batch.map { finished -> AttemptResult in
            var result = finished.result
            if lost.contains(finished.deliveryID) { result.status = .stale }
            return result
        }
        guard let outcomes = await commit(results) else {
            // Not an outage: give the deliveries up; their leases expire and the reaper retries them.
            settle(batch.map(\.deliveryID))
            return
        }
        var acks: [(kind: String, id: String, event: [(String, String)])] = []
        var dropped: [String] = []
        acks.reserveCapacity(batch.count)
        for (finished, result) in zip(batch, results) {
            switch outcomes[result.key] {
            case .recorded?, .alreadyRecorded?:
                acks.append((finished.kind, finished.deliveryID, result.eventFields))
                state.metrics.finished(queue: finished.kind, result)
            case .stale?, nil:
                state.logger.info("recorded a stale outcome: another owner decided this attempt", metadata: [
                    "gantry.run.id": "\(result.key.step.runID)", "gantry.step.id": "\(result.key.step.stepID)",
                    "gantry.attempt": "\(result.key.attempt)",
                ])
                dropped.append(finished.deliveryID)
            }
        }
        // From here the entries leave the pending list; the lease keeper must not take that for a lost lease.
        state.book.markAcking(acks.map(\.id))
        let trimming = trims.due(adding: acks.map(\.kind))
        await state.untilSuccess("acknowledge \(acks.count) deliveries") { () throws(RedisError) in
            try await state.queue.complete(acks, trimming: trimming, on: state.writer)
        }
        settle(acks.map(\.id) + dropped)
    }

    /// Records the results, retrying through an outage; nil when Postgres refuses them for
    /// another reason five times.
    private func commit(_ results: [AttemptResult]) async -> [AttemptKey: AttemptLedger.Outcome]? {
        let state = state
        var backoff = Backoff()
        while true {
            do {
                let outcomes = try await state.ledger.record(results, on: state.db)
                if backoff.failures > 0 { state.logger.info("Postgres is back; outcomes recorded", metadata: ["gantry.count": "\(results.count)"]) }
                return outcomes
            } catch {
                state.metrics.postgresError()
                if backoff.failures == 0 {
                    state.logger.warning("cannot record outcomes in Postgres; holding their leases and retrying", metadata: ["error": "\(error)"])
                }
                if !error.isConnectionFailure && backoff.failures >= 4 {
                    state.logger.error("giving up recording outcomes; the reaper will retry the attempts", metadata: ["error": "\(error)"])
                    return nil
                }
                if Task.isCancelled { return nil }
                await backoff.wait()
            }
        }
    }

    private func settle(_ ids: [String]) {
        state.book.release(ids)
        state.slots.release(ids.count)
    }
}

/// When a busy worker trims acknowledged entries from its kinds' streams (`WorkQueue.complete`):
/// every `interval`, the kinds acknowledged since the last trim.
final class TrimSchedule: Sendable {
    static let interval = Duration.milliseconds(250)
    private let state = Mutex<(last: ContinuousClock.Instant, untrimmed: Set<String>)>((.now, []))

    /// Notes these kinds as acknowledged and returns the kinds to trim now: all noted since
    /// the last trim once `interval` has passed, else none.
    func due(adding kinds: [String]) -> Set<String> {
        state.withLock { state in
            state.untrimmed.formUnion(kinds)
            guard ContinuousClock.now - state.last >= Self.interval else { return [] }
            state.last = .now
            defer { state.untrimmed = [] }
            return state.untrimmed
        }
    }

    /// Notes kinds whose trim failed.
    func retry(_ kinds: Set<String>) {
        state.withLock { $0.untrimmed.formUnion(kinds) }
    }
}

extension Error {
    fileprivate var isConnectionFailure: Bool {
        (self as? PostgresError)?.isConnectionFailure ?? false
    }
}
