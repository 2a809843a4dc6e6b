/// The step lifecycle as a pure function: `(state, event) -> (state', commands)`.
///
/// The dispatcher loads the state, applies the event and carries out the
/// commands; it decides nothing itself. Applying an event twice, or an event for
/// an attempt that is not the current one, changes nothing, which is what makes
/// re-delivered events and concurrent dispatchers safe.
public enum StepMachine {
    /// The result of applying one event.
    public struct Transition: Sendable, Equatable {
        public var state: StepState
        public var commands: [StepCommand]
        /// False when the event was a duplicate or arrived too late to matter.
        public var changed: Bool
    }

    /// Applies `event` to `state` at time `nowMs`; `random` drives the backoff jitter.
    public static func apply(
        _ state: StepState,
        _ event: StepEvent,
        nowMs: Int64,
        random: inout some RandomNumberGenerator
    ) -> Transition {
        let unchanged = Transition(state: state, commands: [], changed: false)
        if state.status.isTerminal { return unchanged }

        switch event {
        case .canceled:
            var next = state
            next.status = .canceled
            next.dueAtMs = nil
            return Transition(state: next, commands: [.finished(.canceled)], changed: true)

        case .attemptFinished(let attempt, let status, let exitCode, let retryable, let error):
            // Only the current attempt decides; older ones (already reclaimed and retried) do not.
            guard attempt == state.attempt else { return unchanged }
            var next = state
            next.lastError = error ?? next.lastError
            switch status {
            case .stale:
                // A stale result is never the step's outcome; its record is kept for audit only.
                return unchanged
            case .succeeded:
                next.status = .succeeded
                next.dueAtMs = nil
                next.lastError = nil
                next.charged += 1
                return Transition(state: next, commands: [.finished(.succeeded)], changed: true)
            case .canceled:
                next.status = .canceled
                next.dueAtMs = nil
                return Transition(state: next, commands: [.finished(.canceled)], changed: true)
            case .interrupted:
                // A drained worker handed the attempt back; it does not count, and goes out again at once.
                next.status = .queued
                next.attempt += 1
                next.dueAtMs = nil
                return Transition(state: next, commands: [.enqueue(attempt: next.attempt)], changed: true)
            case .invalid:
                next.status = .failed
                next.dueAtMs = nil
                next.charged += 1
                return Transition(state: next, commands: [.finished(.failed)], changed: true)
            case .failed, .timedOut, .lost:
                next.charged += 1
                let failure: RetryPolicy.FailureClass = switch status {
                case .timedOut: .timeout
                case .lost: .lost
                default: .failed
                }
                let mayRetry = retryable
                    && state.policy.allows(failure, exitCode: exitCode)
                    && next.charged < state.policy.maxAttempts
                guard mayRetry else {
                    next.status = .failed
                    next.dueAtMs = nil
                    return Transition(state: next, commands: [.finished(.failed)], changed: true)
                }
                next.attempt += 1
                // A lost attempt is not the step's fault: its retry goes out without backoff.
                let delay: Duration = failure == .lost ? .zero : state.policy.delay(beforeAttempt: next.attempt, using: &random)
                if delay <= .zero {
                    next.status = .queued
                    next.dueAtMs = nil
                    return Transition(state: next, commands: [.enqueue(attempt: next.attempt)], changed: true)
                }
                let due = nowMs + delay.milliseconds
                next.status = .retrying
                next.dueAtMs = due
                return Transition(state: next, commands: [.scheduleRetry(attempt: next.attempt, dueAtMs: due)], changed: true)
            }
        }
    }
}
