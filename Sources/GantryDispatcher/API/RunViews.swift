import GantryCore
import GantryPostgres
import GantryRedis

/// Builds the API's view of a run from its rows.
enum RunViews {
    /// - Parameter fleet: the live workers, for the steps that run (worker, start) and those
    ///   whose queue no live worker takes; `.unknown` shows neither.
    static func view(_ detail: RunDetail, fleet: FleetSnapshot = .unknown) -> RunView {
        let run = detail.run
        let attemptsByStep = Dictionary(grouping: detail.attempts, by: \.key.step.stepID)
        let approvalsByStep = Dictionary(grouping: detail.approvals, by: \.stepID)
        let statusByStep = Dictionary(detail.steps.map { ($0.key.stepID, $0.state.status) }, uniquingKeysWith: { a, _ in a })
        let steps = detail.steps.map { step -> StepView in
            let attempts = (attemptsByStep[step.key.stepID] ?? []).map { attempt in
                AttemptView(
                    attempt: attempt.key.attempt, status: attempt.status.rawValue, worker: attempt.worker,
                    exitCode: attempt.exitCode, error: attempt.error,
                    startedAt: timestamp(us: attempt.startedAtUs), finishedAt: timestamp(us: attempt.finishedAtUs),
                    durationMs: Double(attempt.finishedAtUs - attempt.startedAtUs) / 1_000,
                    outputs: JSONValue.parseObject(attempt.outputs) ?? [:], logSHA256: attempt.logSHA256
                )
            }
            var approvals: ApprovalView?
            if let gate = step.approval {
                let decisions = approvalsByStep[step.key.stepID] ?? []
                // The gate's current round began when it was last reached (a retry reaches it again).
                let armedAtMs = step.approvalDeadlineMs.map { $0 - gate.timeout.milliseconds } ?? .min
                var approvedBy = step.approvers
                if step.state.status != .awaitingApproval {
                    // Once passed, the step keeps no list: every approver of the round, from the ledger.
                    approvedBy = []
                    for decision in decisions where decision.approved && decision.decidedAtMs >= armedAtMs && !approvedBy.contains(decision.approver) {
                        approvedBy.append(decision.approver)
                    }
                }
                approvals = ApprovalView(
                    required: gate.required, approvedBy: approvedBy,
                    decisions: decisions.map {
                        .init(decision: $0.approved ? "approved" : "rejected", by: $0.approver, comment: $0.comment, at: timestamp(ms: $0.decidedAtMs))
                    },
                    state: ApprovalOutcome.state(stepStatus: step.state.status.rawValue, lastError: step.state.lastError),
                    deadline: step.approvalDeadlineMs.map { timestamp(ms: $0) }
                )
            }
            var view = StepView(
                id: step.key.stepID, kind: step.kind, section: step.section.rawValue, needs: step.needs,
                status: step.state.status.rawValue, attempt: step.state.attempt,
                waitingFor: waitingFor(step, run: run, statusByStep: statusByStep),
                skipReason: step.state.status == .skipped ? step.skipReason : nil,
                lastError: step.state.lastError, approvals: approvals, attempts: attempts
            )
            if step.state.status == .queued {
                let queue = Identifiers.queueKind(step.kind, pool: step.pool)
                if let runner = fleet.runner(of: AttemptKey(step: step.key, attempt: step.state.attempt)) {
                    view.status = "running"
                    view.worker = runner.worker
                    view.startedAt = timestamp(ms: runner.sinceMs)
                    view.waitingFor = nil
                } else if !fleet.serves(queue) {
                    let pool = step.pool.map { $0 == "default" ? "" : " --pool \($0)" } ?? ""
                    view.waitingFor = "no live worker takes \(queue): start one (gantry worker --kind \(step.kind)\(pool))"
                }
            }
            return view
        }
        var waiting: String?
        if run.status == "waiting" {
            let group = EnvironmentRules.displayGroup(run.concurrencyGroup ?? "", environment: run.environment)
            waiting = detail.behind.map { "behind run \($0) in group \(group)" } ?? "waiting to start in group \(group)"
        }
        return RunView(
            id: run.id, pipeline: run.pipeline, environment: run.environment, sha: run.sha, ref: run.ref,
            submitter: run.submitter, status: run.status, phase: run.phase.rawValue, definitionSHA256: run.definitionSHA256,
            createdAt: timestamp(ms: run.createdAtMs), startedAt: run.startedAtMs.map { timestamp(ms: $0) },
            finishedAt: run.finishedAtMs.map { timestamp(ms: $0) },
            durationMs: run.finishedAtMs.map { $0 - (run.startedAtMs ?? run.createdAtMs) },
            waitingFor: waiting, stopReason: run.stopReason, steps: steps
        )
    }

    /// A listing entry: the run without its steps.
    static func summary(_ run: RunRecord, behind: String? = nil) -> RunView {
        view(RunDetail(run: run, steps: [], attempts: [], approvals: [], behind: behind))
    }

    /// Why a step is not running yet, in words.
    private static func waitingFor(_ step: StepRecord, run: RunRecord, statusByStep: [String: StepStatus]) -> String? {
        switch step.state.status {
        case .pending:
            if run.status == "waiting" { return "the run to start" }
            let open = step.needs.filter { need in
                guard let status = statusByStep[need] else { return false }
                return status != .succeeded && status != .skipped
            }
            if !open.isEmpty { return "waiting for \(open.joined(separator: ", "))" }
            if step.section == .onFailure { return "runs only if the run fails" }
            if step.section == .finally { return "runs when the run ends" }
            return nil
        case .awaitingApproval:
            let required = step.approval?.required ?? 1
            var text = "waiting for approval (\(step.approvers.count)/\(required))"
            if let deadline = step.approvalDeadlineMs { text += " until \(timestamp(ms: deadline))" }
            return text
        case .queued:
            return "queued for a \(step.kind) worker (attempt \(step.state.attempt))"
        case .retrying:
            let due = step.state.dueAtMs.map { " at \(timestamp(ms: $0))" } ?? ""
            return "attempt \(step.state.attempt) of \(step.state.policy.maxAttempts) due\(due)"
        case .succeeded, .failed, .canceled, .skipped:
            return nil
        }
    }

    static func timestamp(ms: Int64) -> String { Timestamp.iso8601(ms: ms) }

    static func timestamp(us: Int64) -> String { Timestamp.iso8601(us: us) }
}
