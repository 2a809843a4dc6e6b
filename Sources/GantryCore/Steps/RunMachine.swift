/// The life of a pipeline run as a pure function: `(RunState, RunEvent) -> (RunState, [RunCommand])`.
///
/// Rules: a step starts when everything it needs succeeded or was skipped by a
/// filter; a step that fails for good fails the run, and the steps that have not
/// started are skipped; once nothing runs, `on_failure` runs (if the run failed),
/// then `finally`, one step after another; then the run finishes. Each step's
/// attempts and retries are decided by `StepMachine`. The dispatcher applies the
/// commands and decides nothing itself.
public enum RunMachine {
    /// Applies one event at `nowMs`; `random` drives retry jitter.
    public static func apply(
        _ state: RunState, _ event: RunEvent, nowMs: Int64, random: inout some RandomNumberGenerator
    ) -> (state: RunState, commands: [RunCommand]) {
        var next = state
        var commands: [RunCommand] = []
        if next.phase == .done, !event.isRetryFailed { return (state, []) }
        switch event {
        case .submitted(let skips):
            guard next.phase == .notStarted else { return (state, []) }
            next.phase = .main
            // Every wait has a deadline; the run's own is its pipeline's timeout.
            commands.append(.armDeadline(atMs: nowMs + next.timeout.milliseconds))
            for (id, reason) in skips.sorted(by: { $0.key < $1.key }) where next.steps[id]?.lifecycle == .pending {
                next.steps[id]?.lifecycle = .skipped(reason, byFilter: true)
                commands.append(.markSkipped(step: id, reason: reason))
            }

        case .attemptFinished(let id, let attempt, let status, let exitCode, let retryable, let error):
            guard var step = next.steps[id], step.lifecycle == .active else { return (state, []) }
            let transition = StepMachine.apply(
                step.attempts,
                .attemptFinished(attempt: attempt, status: status, exitCode: exitCode, retryable: retryable, error: error),
                nowMs: nowMs, random: &random
            )
            guard transition.changed else { return (state, []) }
            step.attempts = transition.state
            for command in transition.commands {
                switch command {
                case .enqueue(let attempt):
                    commands.append(.enqueue(step: id, attempt: attempt))
                case .scheduleRetry(let attempt, let due):
                    commands.append(.scheduleRetry(step: id, attempt: attempt, dueAtMs: due))
                case .finished(let outcome):
                    step.lifecycle = outcome == .succeeded ? .succeeded : outcome == .canceled ? .canceled : .failed
                }
            }
            next.steps[id] = step
            if step.lifecycle == .failed, step.section == .main, next.outcome == .running {
                next.outcome = .failed
            }

        case .attemptStarted(let id, let attempt), .retryDue(let id, let attempt):
            // The attempt left the delayed set (retry due) or a worker began it: it is queued, not waiting.
            guard var step = next.steps[id], step.lifecycle == .active, step.attempts.attempt == attempt,
                  step.attempts.status == .retrying else { return (state, []) }
            step.attempts.status = .queued
            step.attempts.dueAtMs = nil
            next.steps[id] = step
            if case .retryDue = event { commands.append(.enqueue(step: id, attempt: attempt)) }

        case .approvalGranted(let id, let approver):
            guard var step = next.steps[id], case .awaitingApproval(var approvers, let required, let deadline) = step.lifecycle,
                  !approvers.contains(approver) else { return (state, []) }
            approvers.append(approver)
            step.lifecycle = approvers.count >= required ? .succeeded : .awaitingApproval(approvers: approvers, required: required, deadlineMs: deadline)
            next.steps[id] = step

        case .approvalRejected(let id, _), .approvalTimedOut(let id):
            guard case .awaitingApproval(let approvers, let required, let deadline)? = next.steps[id]?.lifecycle else { return (state, []) }
            next.steps[id]?.lifecycle = .failed
            // Kept as the step's error, so that a gate that timed out never reads as a rejection.
            if case .approvalRejected(_, let approver) = event {
                next.steps[id]?.attempts.lastError = "rejected by \(approver)"
            } else {
                next.steps[id]?.attempts.lastError = "\(ApprovalOutcome.timedOutPrefix) \(Timestamp.iso8601(ms: deadline)) with \(approvers.count) of \(required) approvals"
            }
            if next.steps[id]?.section == .main, next.outcome == .running { next.outcome = .failed }

        case .canceled where next.phase == .notStarted:
            // Canceled while it waited for its concurrency group: nothing ran, nothing runs.
            next.outcome = .canceled
            next.stopReason = "the run was canceled before it started"
            for id in next.steps.keys.sorted() {
                next.steps[id]!.lifecycle = .skipped(next.stopReason!, byFilter: false)
                commands.append(.markSkipped(step: id, reason: next.stopReason!))
            }
            next.phase = .done
            commands.append(.finishRun(.canceled))
            return (next, commands)

        case .canceled, .deadlinePassed:
            // finally steps always run to the end; before them, a cancel or a deadline stops everything.
            guard next.phase == .main || next.phase == .onFailure else { return (state, []) }
            // A run that already failed stays failed; the stop still ends what is running.
            if next.outcome == .running { next.outcome = event == .canceled ? .canceled : .failed }
            next.stopReason = event == .canceled ? "the run was canceled" : "the run passed its deadline"
            let running = next.steps.filter { $0.value.section != .finally && $0.value.lifecycle == .active }.map(\.key).sorted()
            if !running.isEmpty { commands.append(.cancelAttempts(steps: running)) }
            for (id, step) in next.steps where step.section != .finally {
                if case .awaitingApproval = step.lifecycle {
                    next.steps[id]?.lifecycle = .canceled
                }
            }

        case .retryFailed(let only):
            guard next.phase == .done, next.outcome == .failed else { return (state, []) }
            let failed = next.steps.filter { $0.value.section == .main && $0.value.lifecycle == .failed }.map(\.key)
            let chosen = only.map { failed.contains($0) ? [$0] : [] } ?? failed
            guard !chosen.isEmpty else { return (state, []) }
            var reset = Set(chosen)
            // Their dependents, which were skipped because of them, run again too.
            var grew = true
            while grew {
                grew = false
                for (id, step) in next.steps where step.section == .main && !reset.contains(id) && !step.needs.allSatisfy({ !reset.contains($0) }) {
                    if case .skipped(_, byFilter: false) = step.lifecycle { reset.insert(id); grew = true }
                }
            }
            // Steps that ran go again as their next attempt; those that never ran keep their number.
            func rearm(_ id: String) {
                let step = next.steps[id]!
                let ran = step.lifecycle == .succeeded || step.lifecycle == .failed || step.lifecycle == .canceled
                next.steps[id]!.attempts = StepState(status: .queued, attempt: step.attempts.attempt + (ran ? 1 : 0), policy: step.attempts.policy)
                next.steps[id]!.lifecycle = .pending
            }
            // A retry is a new deployment: the approval gates before what runs again are asked again.
            var gates: Set<String> = []
            var seen = reset
            var stack = Array(reset)
            while let id = stack.popLast() {
                for need in next.steps[id]?.needs ?? [] where seen.insert(need).inserted {
                    if next.steps[need]?.approval != nil { gates.insert(need) }
                    stack.append(need)
                }
            }
            reset.formUnion(gates)
            for id in reset { rearm(id) }
            for (id, step) in next.steps where step.section != .main { rearm(id) }
            next.outcome = .running
            next.stopReason = nil
            next.phase = .main
        }
        advance(&next, &commands, nowMs: nowMs)
        return (next, commands)
    }

    /// Starts what can start, skips what can no longer run, moves through the phases.
    private static func advance(_ state: inout RunState, _ commands: inout [RunCommand], nowMs: Int64) {
        while true {
            switch state.phase {
            case .notStarted, .done:
                return
            case .main:
                if state.outcome != .running {
                    skipPending(in: .main, state.stopReason ?? "an earlier step failed", &state, &commands)
                } else {
                    start(ready(in: .main, state), &state, &commands, nowMs: nowMs)
                }
                guard !state.isBusy(.main) else { return }
                if state.outcome == .running { state.outcome = .succeeded }
                state.phase = state.outcome == .failed && !state.ids(in: .onFailure).isEmpty ? .onFailure : .finally
                if state.phase == .finally {
                    skipPending(in: .onFailure, state.outcome == .canceled ? (state.stopReason ?? "the run was canceled") : "the run did not fail", &state, &commands)
                }
            case .onFailure:
                if let reason = state.stopReason {
                    skipPending(in: .onFailure, reason, &state, &commands)
                } else {
                    start(ready(in: .onFailure, state), &state, &commands, nowMs: nowMs)
                }
                guard !state.isBusy(.onFailure) else { return }
                skipPending(in: .onFailure, "a step it needs did not succeed", &state, &commands)
                state.phase = .finally
            case .finally:
                // One after another, in the order written.
                if state.isBusy(.finally) { return }
                if let id = state.ids(in: .finally).first(where: { state.steps[$0]!.lifecycle == .pending }) {
                    // A finally step has needs only when the environment's approval gate was
                    // added to them: a run its approvers refused runs only its notifications.
                    if ready(in: .finally, state).contains(id) {
                        start([id], &state, &commands, nowMs: nowMs)
                    } else {
                        let reason = "a step it needs did not succeed"
                        state.steps[id]!.lifecycle = .skipped(reason, byFilter: false)
                        commands.append(.markSkipped(step: id, reason: reason))
                    }
                    continue
                }
                state.phase = .done
                commands.append(.finishRun(state.outcome == .canceled ? .canceled : state.outcome == .failed ? .failed : .succeeded))
            }
        }
    }

    /// Marks every step of `section` that has not started as skipped, with the reason.
    private static func skipPending(in section: RunState.Section, _ reason: String, _ state: inout RunState, _ commands: inout [RunCommand]) {
        for id in state.ids(in: section) where state.steps[id]!.lifecycle == .pending {
            state.steps[id]!.lifecycle = .skipped(reason, byFilter: false)
            commands.append(.markSkipped(step: id, reason: reason))
        }
    }

    private static func ready(in section: RunState.Section, _ state: RunState) -> [String] {
        func satisfied(_ id: String) -> Bool {
            guard let other = state.steps[id] else { return true }
            switch other.lifecycle {
            case .succeeded: return true
            case .skipped(_, let byFilter): return byFilter
            default: return false
            }
        }
        // Approval gates asked again by a retry hold back every step after them, also those
        // whose direct needs already succeeded. Nearly always none: then nothing is walked.
        let openGates = state.steps.filter { $0.value.approval != nil && $0.value.section == .main && !satisfied($0.key) }.map(\.key)
        return state.ids(in: section).filter { id in
            let step = state.steps[id]!
            guard step.lifecycle == .pending, step.needs.allSatisfy(satisfied) else { return false }
            return openGates.isEmpty || !state.hasAncestor(id, in: Set(openGates))
        }
    }

    private static func start(_ ids: [String], _ state: inout RunState, _ commands: inout [RunCommand], nowMs: Int64) {
        for id in ids {
            var step = state.steps[id]!
            if let approval = step.approval {
                let deadline = nowMs + approval.timeout.milliseconds
                step.lifecycle = .awaitingApproval(approvers: [], required: approval.required, deadlineMs: deadline)
                commands.append(.awaitApproval(step: id, required: approval.required, deadlineMs: deadline))
            } else {
                step.lifecycle = .active
                commands.append(.enqueue(step: id, attempt: step.attempts.attempt))
            }
            state.steps[id] = step
        }
    }
}

/// Something that happened to a run.
public enum RunEvent: Sendable, Equatable {
    /// The run was accepted; these steps are skipped by `when.paths` or `if:`, with the reason.
    case submitted(skips: [String: String])
    /// A worker began the attempt.
    case attemptStarted(step: String, attempt: Int)
    /// A delayed retry is due: it goes to its kind's queue now.
    case retryDue(step: String, attempt: Int)
    case attemptFinished(step: String, attempt: Int, status: AttemptStatus, exitCode: Int32?, retryable: Bool, error: String?)
    case approvalGranted(step: String, by: String)
    case approvalRejected(step: String, by: String)
    case approvalTimedOut(step: String)
    case canceled
    case deadlinePassed
    /// Re-run the failed steps (or only this one) and what they hold up, as new attempts.
    case retryFailed(step: String?)

    var isRetryFailed: Bool {
        if case .retryFailed = self { return true }
        return false
    }
}

/// What the dispatcher must do after a run transition.
public enum RunCommand: Sendable, Equatable {
    case enqueue(step: String, attempt: Int)
    case scheduleRetry(step: String, attempt: Int, dueAtMs: Int64)
    case markSkipped(step: String, reason: String)
    case awaitApproval(step: String, required: Int, deadlineMs: Int64)
    /// Ask the workers holding these steps to stop them (recorded `canceled`).
    case cancelAttempts(steps: [String])
    /// Send `deadlinePassed` at this time unless the run has finished.
    case armDeadline(atMs: Int64)
    case finishRun(StepStatus)
}

/// A run's state: each step's place in its life, the phase, and the outcome so far.
public struct RunState: Sendable, Equatable {
    /// Raw values are what the steps and runs tables store.
    public enum Section: String, Sendable, Equatable, CaseIterable {
        case main
        case onFailure = "on_failure"
        case finally
    }
    public enum Phase: String, Sendable, Equatable {
        case notStarted = "not_started"
        case main
        case onFailure = "on_failure"
        case finally
        case done
    }
    public enum Outcome: String, Sendable, Equatable { case running, succeeded, failed, canceled }

    public enum Lifecycle: Sendable, Equatable {
        case pending
        /// Attempts are in flight; `attempts` says which and how many.
        case active
        case awaitingApproval(approvers: [String], required: Int, deadlineMs: Int64)
        case succeeded
        case failed
        /// Will not run; `byFilter` when `when.paths` or `if:` said so (then it counts as
        /// satisfied for the steps that need it), not because something before it failed.
        case skipped(String, byFilter: Bool)
        case canceled
    }

    /// The settings of an approval gate.
    public struct Approval: Sendable, Equatable {
        public var required: Int
        public var timeout: Duration

        public init(required: Int, timeout: Duration) {
            self.required = required
            self.timeout = timeout
        }
    }

    public struct Step: Sendable, Equatable {
        public var section: Section
        public var needs: [String]
        /// Set for an approval gate: how many approvers it needs and how long it waits.
        public var approval: Approval?
        public var lifecycle: Lifecycle = .pending
        public var attempts: StepState

        public init(section: Section, needs: [String], approval: Approval? = nil, lifecycle: Lifecycle = .pending, attempts: StepState) {
            self.section = section
            self.needs = needs
            self.approval = approval
            self.lifecycle = lifecycle
            self.attempts = attempts
        }
    }

    public var steps: [String: Step]
    /// The run's deadline after submit (the pipeline's `timeout`).
    public var timeout: Duration
    /// Step ids per section in the order written.
    public private(set) var order: [Section: [String]]
    public var phase: Phase = .notStarted
    public var outcome: Outcome = .running
    /// Why the run stopped early (canceled, past its deadline), shown on the steps it skipped.
    public internal(set) var stopReason: String?

    /// A state as stored: the dispatcher rebuilds it from the run's rows for every transition.
    public init(
        steps: [String: Step], order: [Section: [String]], timeout: Duration,
        phase: Phase, outcome: Outcome, stopReason: String?
    ) {
        self.steps = steps
        self.order = order
        self.timeout = timeout
        self.phase = phase
        self.outcome = outcome
        self.stopReason = stopReason
    }

    /// The initial state of a run of `definition`.
    public init(_ definition: PipelineDefinition) {
        var steps: [String: Step] = [:]
        var order: [Section: [String]] = [:]
        for (section, list) in [(Section.main, definition.steps), (.onFailure, definition.onFailure), (.finally, definition.finally)] {
            order[section] = list.map(\.id)
            for step in list {
                var state = Step(section: section, needs: step.needs, attempts: StepState(policy: step.retry))
                if step.kind == "approval" {
                    let required = step.inputs["required"]?.intValue ?? 1
                    let timeout = step.inputs["timeout"]?.stringValue.flatMap { try? DurationParser.parse($0) } ?? .seconds(86_400)
                    state.approval = Approval(required: max(1, required), timeout: timeout)
                }
                steps[step.id] = state
            }
        }
        self.steps = steps
        self.order = order
        self.timeout = definition.timeout
    }

    func ids(in section: Section) -> [String] { order[section] ?? [] }

    /// Whether one of `ids` is among the step's ancestors through `needs`.
    func hasAncestor(_ id: String, in ids: Set<String>) -> Bool {
        var seen: Set<String> = []
        var stack = steps[id]?.needs ?? []
        while let next = stack.popLast() {
            if ids.contains(next) { return true }
            if seen.insert(next).inserted { stack += steps[next]?.needs ?? [] }
        }
        return false
    }

    /// Whether a step of the section is still running or waiting for approval.
    func isBusy(_ section: Section) -> Bool {
        ids(in: section).contains { id in
            switch steps[id]!.lifecycle {
            case .active, .awaitingApproval: true
            default: false
            }
        }
    }
}
