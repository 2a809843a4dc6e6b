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
/// Each running attempt's executor runs in a task of its own, whose `cancel` is
/// attached here; the supervisor fires `timeout` when a deadline passes, the
/// heartbeat fires `leaseLost`, a drain fires `drain`, the cancel watcher
/// `canceled`. The first reason given sticks and cancels the executor; when the
/// executor returns, `finish` says whether a stop came first (and the attempt
/// ends as that reason) or not (it ends as the executor says).
///
/// One task per attempt instead of an executor task racing a watcher task in a
/// task group: the group, the second task and its continuation were a tenth of a
/// worker's CPU per step (perf).
final class ExecutionControl: Sendable {
    private struct Entry {
        var deadline: ContinuousClock.Instant
        var reason: StopReason?
        var cancel: (@Sendable () -> Void)?
    }

    private let entries = Mutex<[String: Entry]>([:])

    func register(_ id: String, deadline: ContinuousClock.Instant) {
        entries.withLock { $0[id] = Entry(deadline: deadline) }
    }

    /// Attaches how to stop the attempt's executor; called at once when a stop came before.
    func attach(_ id: String, cancel: @escaping @Sendable () -> Void) {
        let stopped = entries.withLock { entries -> Bool in
            guard entries[id] != nil else { return false }
            entries[id]?.cancel = cancel
            return entries[id]?.reason != nil
        }
        if stopped { cancel() }
    }

    /// The executor returned: forgets the attempt and returns the stop asked for before, if any.
    func finish(_ id: String) -> StopReason? {
        entries.withLock { $0.removeValue(forKey: id)?.reason }
    }

    /// Asks one attempt to stop; the first reason given sticks. Nothing happens to an
    /// attempt whose executor already returned.
    func stop(_ id: String, _ reason: StopReason) {
        let cancel = entries.withLock { entries -> (@Sendable () -> Void)? in
            guard var entry = entries[id], entry.reason == nil else { return nil }
            entry.reason = reason
            entries[id] = entry
            return entry.cancel
        }
        cancel?()
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
