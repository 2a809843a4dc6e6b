import Synchronization

/// Why the runtime stopped an attempt before its executor finished.
enum StopReason: Sendable, Equatable {
    /// The attempt ran past its timeout: recorded `timed_out`.
    case timeout
    /// The worker's lease on the delivery was reclaimed: recorded `stale`.
    case leaseLost
    /// The worker is draining and the grace period is over: recorded `interrupted`.
    case drain
    /// A user canceled the run: recorded `canceled`.
    case canceled
}

/// Deadlines and stop requests of the attempts a worker is running.
///
/// Each running attempt has a watcher task waiting in `waitForStop`; the
/// supervisor fires `timeout` when a deadline passes, the heartbeat fires
/// `leaseLost`, a drain fires `drain`. Whichever comes first wins.
final class ExecutionControl: Sendable {
    private struct Entry {
        var deadline: ContinuousClock.Instant
        var reason: StopReason?
        var waiter: CheckedContinuation<StopReason?, Never>?
    }

    private let entries = Mutex<[String: Entry]>([:])

    func register(_ id: String, deadline: ContinuousClock.Instant) {
        entries.withLock { $0[id] = Entry(deadline: deadline) }
    }

    func remove(_ id: String) {
        let waiter = entries.withLock { $0.removeValue(forKey: id)?.waiter }
        waiter?.resume(returning: nil)
    }

    /// Returns the reason once the attempt must stop; `nil` if the waiting task is cancelled
    /// (its executor finished first).
    func waitForStop(_ id: String) async -> StopReason? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<StopReason?, Never>) in
                let immediate: StopReason?? = entries.withLock { entries in
                    guard var entry = entries[id] else { return .some(nil) }
                    if let reason = entry.reason { return .some(reason) }
                    if Task.isCancelled { return .some(nil) }
                    entry.waiter = continuation
                    entries[id] = entry
                    return .none
                }
                if case .some(let value) = immediate { continuation.resume(returning: value) }
            }
        } onCancel: {
            let waiter = entries.withLock { entries -> CheckedContinuation<StopReason?, Never>? in
                let waiter = entries[id]?.waiter
                entries[id]?.waiter = nil
                return waiter
            }
            waiter?.resume(returning: nil)
        }
    }

    /// Asks one attempt to stop; the first reason given sticks.
    func stop(_ id: String, _ reason: StopReason) {
        let waiter = entries.withLock { entries -> CheckedContinuation<StopReason?, Never>? in
            guard var entry = entries[id], entry.reason == nil else { return nil }
            entry.reason = reason
            let waiter = entry.waiter
            entry.waiter = nil
            entries[id] = entry
            return waiter
        }
        waiter?.resume(returning: reason)
    }

    /// Asks every running attempt to stop.
    func stopAll(_ reason: StopReason) {
        for id in entries.withLock({ Array($0.keys) }) { stop(id, reason) }
    }

    /// Fires `timeout` for every attempt whose deadline has passed.
    func expire(now: ContinuousClock.Instant) {
        let due = entries.withLock { entries in
            entries.compactMap { id, entry in entry.reason == nil && entry.deadline <= now ? id : nil }
        }
        for id in due { stop(id, .timeout) }
    }

    var count: Int { entries.withLock { $0.count } }
}
