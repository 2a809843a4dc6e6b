import GantryCore
import GantryRedis
import Synchronization

/// The deliveries a worker holds, from the read that took them until their outcome is
/// acknowledged, and the cancels it has seen: the one book the worker's services share.
/// The reader enters deliveries, the lease keeper marks lost leases and announces what
/// runs, the recorder marks and settles what it acknowledged, the cancel watcher finds the
/// attempts a cancel names.
final class HeldDeliveries: Sendable {
    /// One delivery the worker holds.
    struct Held: Sendable {
        let kind: String
        /// The attempt's name in the cancel list (`run/step/attempt`).
        let attempt: String
        /// When this worker took it (shown as the step's start while it runs).
        let startedMs: Int64
        /// The lease keeper found the lease gone: the outcome can only be recorded stale.
        var leaseLost = false
        /// The outcome is recorded and its acknowledgement is on its way.
        var acking = false
    }

    private struct State {
        var held: [String: Held] = [:]
        /// Attempts canceled by users, as the cancel watcher or the last read of deliveries saw
        /// them, with when they were last seen.
        var canceled: [String: ContinuousClock.Instant] = [:]
        /// The latest score read from the cancel list; the next read starts there.
        var cancelsReadUpToMs: Int64 = 0
    }

    private let state = Mutex(State())

    // MARK: Holding

    /// Enters a delivery the worker took.
    func hold(_ deliveryID: String, kind: String, attempt: String, startedMs: Int64) {
        state.withLock { $0.held[deliveryID] = Held(kind: kind, attempt: attempt, startedMs: startedMs) }
    }

    var isEmpty: Bool { state.withLock { $0.held.isEmpty } }

    /// The ids of the deliveries held.
    var deliveryIDs: Set<String> { state.withLock { Set($0.held.keys) } }

    /// Of these deliveries, those whose lease was found lost.
    func leaseLost(among ids: [String]) -> Set<String> {
        state.withLock { state in Set(ids.filter { state.held[$0]?.leaseLost == true }) }
    }

    /// Notes that these deliveries' outcomes are recorded and being acknowledged: from here
    /// they leave the pending list, which the lease keeper must not take for a lost lease.
    func markAcking(_ ids: [String]) {
        state.withLock { state in for id in ids { state.held[id]?.acking = true } }
    }

    /// Forgets these deliveries (acknowledged, or given up).
    func release(_ ids: [String]) {
        state.withLock { state in for id in ids { state.held.removeValue(forKey: id) } }
    }

    // MARK: Leases

    /// The deliveries whose lease to renew, by kind: held, not lost, not being acknowledged.
    func renewable() -> [String: [String]] {
        state.withLock { state in
            var byKind: [String: [String]] = [:]
            for (id, held) in state.held where !held.leaseLost && !held.acking { byKind[held.kind, default: []].append(id) }
            return byKind
        }
    }

    /// Marks as lost the deliveries renewal asked for and Redis did not confirm; returns them.
    /// Those acknowledged while the renewal was asked for are not lost, just done.
    func markLost(asked ids: [String], owned: Set<String>) -> [String] {
        state.withLock { state in
            ids.filter { id in
                guard !owned.contains(id), let held = state.held[id], !held.acking else { return false }
                state.held[id]?.leaseLost = true
                return true
            }
        }
    }

    /// What the worker runs now, for its heartbeat: held and not yet being acknowledged.
    func running() -> [RunningAttempt] {
        state.withLock { state in
            state.held.values.filter { !$0.acking }.map { RunningAttempt(attempt: $0.attempt, sinceMs: $0.startedMs) }
        }
    }

    // MARK: Cancels

    /// Where the next read of the cancel list starts.
    var cancelsReadUpToMs: Int64 { state.withLock { $0.cancelsReadUpToMs } }

    /// Whether a user canceled this attempt (by its name in the cancel list).
    func isCanceled(_ attempt: String) -> Bool {
        state.withLock { $0.canceled[attempt] != nil }
    }

    /// Notes cancels read from the list; returns the held deliveries they name that were not
    /// seen canceled before (to stop).
    func note(cancels members: [String], latestMs: Int64) -> [String] {
        state.withLock { state in
            state.cancelsReadUpToMs = max(state.cancelsReadUpToMs, latestMs)
            let now = ContinuousClock.now
            let fresh = Set(members.filter { state.canceled.updateValue(now, forKey: $0) == nil })
            guard !fresh.isEmpty else { return [] }
            return state.held.filter { fresh.contains($0.value.attempt) }.map(\.key)
        }
    }

    /// Forgets cancels not seen for `age` (entries are re-read at the latest score; an hour of
    /// them is kept to recognise repeats).
    func forgetCancels(olderThan age: Duration) {
        let now = ContinuousClock.now
        state.withLock { state in state.canceled = state.canceled.filter { now - $0.value < age } }
    }
}
