import GantryCore
import Testing

@Suite struct RunMachineTests {
    func definition(_ yaml: String) throws -> PipelineDefinition {
        let (definition, diagnostics) = PipelineParser().parse(yaml, file: "p.yml")
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        return try #require(definition)
    }

    /// Applies the events at t = 1 s; the deadline command of a submit is checked once, then left out.
    func run(_ state: RunState, _ events: [RunEvent]) -> (RunState, [RunCommand]) {
        var random = SeededRandom(seed: 3)
        var state = state
        var all: [RunCommand] = []
        for event in events {
            let (next, commands) = RunMachine.apply(state, event, nowMs: 1_000, random: &random)
            if case .submitted = event, state.phase == .notStarted {
                #expect(commands.first == .armDeadline(atMs: 1_000 + state.timeout.milliseconds))
            }
            state = next
            all += commands.filter { if case .armDeadline = $0 { false } else { true } }
        }
        return (state, all)
    }

    func ok(_ step: String, _ attempt: Int = 1) -> RunEvent {
        .attemptFinished(step: step, attempt: attempt, status: .succeeded, exitCode: nil, retryable: true, error: nil)
    }

    func fail(_ step: String, _ attempt: Int = 1) -> RunEvent {
        .attemptFinished(step: step, attempt: attempt, status: .failed, exitCode: 1, retryable: false, error: "boom")
    }

    let fanOut = """
        pipeline: p
        steps:
          - { id: a, kind: noop }
          - { id: b, kind: noop, needs: [a] }
          - { id: c, kind: noop, needs: [a] }
          - { id: d, kind: noop, needs: [b, c] }
        on_failure:
          - { id: rollback, kind: noop }
        finally:
          - { id: n1, kind: noop }
          - { id: n2, kind: noop }
        """

    @Test func fanOutFanInThenFinallyInOrder() throws {
        let (state, commands) = run(RunState(try definition(fanOut)), [.submitted(skips: [:]), ok("a"), ok("c"), ok("b"), ok("d"), ok("n1"), ok("n2")])
        #expect(commands == [
            .enqueue(step: "a", attempt: 1), .enqueue(step: "b", attempt: 1), .enqueue(step: "c", attempt: 1),
            .enqueue(step: "d", attempt: 1), .markSkipped(step: "rollback", reason: "the run did not fail"),
            .enqueue(step: "n1", attempt: 1), .enqueue(step: "n2", attempt: 1), .finishRun(.succeeded),
        ])
        #expect(state.phase == .done && state.outcome == .succeeded)
    }

    @Test func aFailureSkipsWhatIsLeftThenOnFailureThenFinally() throws {
        let (state, commands) = run(RunState(try definition(fanOut)), [.submitted(skips: [:]), ok("a"), fail("b"), ok("c"), ok("rollback"), ok("n1"), ok("n2")])
        #expect(commands == [
            .enqueue(step: "a", attempt: 1), .enqueue(step: "b", attempt: 1), .enqueue(step: "c", attempt: 1),
            // b failed while c was running: d can no longer run; on_failure waits for c.
            .markSkipped(step: "d", reason: "an earlier step failed"),
            .enqueue(step: "rollback", attempt: 1), .enqueue(step: "n1", attempt: 1), .enqueue(step: "n2", attempt: 1),
            .finishRun(.failed),
        ])
        #expect(state.outcome == .failed)
    }

    @Test func filteredStepsCountAsSatisfied() throws {
        let (_, commands) = run(RunState(try definition(fanOut)), [.submitted(skips: ["b": "no changed file matches"]), ok("a"), ok("c")])
        #expect(commands.contains(.markSkipped(step: "b", reason: "no changed file matches")))
        #expect(commands.last == .enqueue(step: "d", attempt: 1))
    }

    @Test func retriesComeFromTheStepPolicy() throws {
        let yaml = "pipeline: p\nsteps:\n  - { id: a, kind: noop, retry: { max_attempts: 2, backoff: { initial: 1s, jitter: none } } }\n"
        let failedOnce = RunEvent.attemptFinished(step: "a", attempt: 1, status: .failed, exitCode: 1, retryable: true, error: "x")
        let (state, commands) = run(RunState(try definition(yaml)), [.submitted(skips: [:]), failedOnce, ok("a", 2)])
        #expect(commands == [.enqueue(step: "a", attempt: 1), .scheduleRetry(step: "a", attempt: 2, dueAtMs: 2_000), .finishRun(.succeeded)])
        #expect(state.steps["a"]?.attempts.attempt == 2)
    }

    @Test func approvalsNeedDistinctApproversAndCanTimeOut() throws {
        let yaml = "pipeline: p\nsteps:\n  - { id: gate, kind: approval, with: { required: 2, timeout: 1h } }\n  - { id: go, kind: noop, needs: [gate] }\n"
        let start = RunState(try definition(yaml))
        let (waiting, first) = run(start, [.submitted(skips: [:]), .approvalGranted(step: "gate", by: "ann"), .approvalGranted(step: "gate", by: "ann")])
        #expect(first == [.awaitApproval(step: "gate", required: 2, deadlineMs: 3_601_000)])
        #expect(waiting.steps["gate"]?.lifecycle == .awaitingApproval(approvers: ["ann"], required: 2, deadlineMs: 3_601_000))
        let (_, approved) = run(waiting, [.approvalGranted(step: "gate", by: "bob")])
        #expect(approved == [.enqueue(step: "go", attempt: 1)])
        let (timedOut, commands) = run(waiting, [.approvalTimedOut(step: "gate")])
        #expect(commands == [.markSkipped(step: "go", reason: "an earlier step failed"), .finishRun(.failed)])
        #expect(timedOut.outcome == .failed)
        // A timeout and a rejection fail the gate alike, and are told apart by its error.
        let deadline = try #require({ () -> Int64? in
            if case .awaitingApproval(_, _, let deadline)? = waiting.steps["gate"]?.lifecycle { return deadline }
            return nil
        }())
        #expect(timedOut.steps["gate"]?.attempts.lastError == "approval timed out at \(Timestamp.iso8601(ms: deadline)) with 1 of 2 approvals")
        #expect(ApprovalOutcome.state(stepStatus: "failed", lastError: timedOut.steps["gate"]?.attempts.lastError) == "timed_out")
        let (rejected, _) = run(waiting, [.approvalRejected(step: "gate", by: "bob")])
        #expect(rejected.steps["gate"]?.attempts.lastError == "rejected by bob")
        #expect(ApprovalOutcome.state(stepStatus: "failed", lastError: rejected.steps["gate"]?.attempts.lastError) == "rejected")
    }

    @Test func cancelStopsRunningStepsSkipsTheRestAndRunsFinally() throws {
        let state = RunState(try definition(fanOut))
        let canceledAttempt = RunEvent.attemptFinished(step: "a", attempt: 1, status: .canceled, exitCode: nil, retryable: true, error: nil)
        let (end, commands) = run(state, [.submitted(skips: [:]), .canceled, canceledAttempt, ok("n1"), ok("n2")])
        #expect(commands == [
            .enqueue(step: "a", attempt: 1), .cancelAttempts(steps: ["a"]),
            .markSkipped(step: "b", reason: "the run was canceled"), .markSkipped(step: "c", reason: "the run was canceled"),
            .markSkipped(step: "d", reason: "the run was canceled"), .markSkipped(step: "rollback", reason: "the run was canceled"),
            .enqueue(step: "n1", attempt: 1), .enqueue(step: "n2", attempt: 1), .finishRun(.canceled),
        ])
        #expect(end.outcome == .canceled)
    }

    @Test func retryFailedRerunsTheFailedStepAndWhatItHeldUp() throws {
        let (failed, _) = run(RunState(try definition(fanOut)), [.submitted(skips: [:]), ok("a"), fail("b"), ok("c"), ok("rollback"), ok("n1"), ok("n2")])
        let (state, commands) = run(failed, [.retryFailed(step: nil), ok("b", 2), ok("d"), ok("n1", 2), ok("n2", 2)])
        #expect(commands == [
            .enqueue(step: "b", attempt: 2), .enqueue(step: "d", attempt: 1),
            .markSkipped(step: "rollback", reason: "the run did not fail"), .enqueue(step: "n1", attempt: 2), .enqueue(step: "n2", attempt: 2), .finishRun(.succeeded),
        ])
        #expect(state.outcome == .succeeded)
    }

    @Test func eventsAfterTheEndAndDuplicatesChangeNothing() throws {
        let (done, _) = run(RunState(try definition(fanOut)), [.submitted(skips: [:]), ok("a"), ok("b"), ok("c"), ok("d"), ok("n1"), ok("n2")])
        for event in [ok("a"), .canceled, .deadlinePassed, .submitted(skips: [:]), .retryFailed(step: nil)] {
            let (after, commands) = run(done, [event])
            #expect(after == done && commands.isEmpty)
        }
    }

    // MARK: Properties over random DAGs and random event orders

    @Test func randomRunsRespectNeedsEndOnceAndRunFinallyOnce() {
        var random = SeededRandom(seed: 99)
        for _ in 0..<500 {
            let count = Int.random(in: 1...8, using: &random)
            var main: [PipelineStep] = []
            for index in 0..<count {
                let needs = (0..<index).filter { _ in Int.random(in: 0..<3, using: &random) == 0 }.map { "s\($0)" }
                main.append(PipelineStep(id: "s\(index)", kind: "noop", needs: needs, retry: RetryPolicy(maxAttempts: Int.random(in: 1...3, using: &random), initial: .zero)))
            }
            let onFailure = (0..<Int.random(in: 0...2, using: &random)).map { PipelineStep(id: "f\($0)", kind: "deploy", retry: .never) }
            let finally = (0..<Int.random(in: 0...2, using: &random)).map { PipelineStep(id: "z\($0)", kind: "notify", retry: .never) }
            let definition = PipelineDefinition(name: "r", steps: main, onFailure: onFailure, finally: finally)
            var state = RunState(definition)
            let skips = Dictionary(main.filter { _ in Int.random(in: 0..<6, using: &random) == 0 }.map { ($0.id, "filtered") }, uniquingKeysWith: { a, _ in a })
            var outstanding: [(String, Int)] = []
            var enqueued: [String: Int] = [:]
            var finished = 0
            var events = 0
            var stopped = false
            func handle(_ commands: [RunCommand], before: RunState) {
                for command in commands {
                    switch command {
                    case .enqueue(let id, let attempt), .scheduleRetry(let id, let attempt, _):
                        #expect(finished == 0, "enqueued \(id) after the run finished")
                        if case .enqueue = command, attempt == 1 || before.steps[id]?.lifecycle == .pending {
                            // A step starts only when what it needs succeeded or was filtered out.
                            for need in definition.steps.first(where: { $0.id == id })?.needs ?? [] {
                                let lifecycle = state.steps[need]?.lifecycle
                                #expect(lifecycle == .succeeded || lifecycle == .skipped("filtered", byFilter: true), "\(id) started before \(need)")
                            }
                            enqueued[id, default: 0] += 1
                        }
                        outstanding.append((id, attempt))
                    case .finishRun:
                        finished += 1
                    case .cancelAttempts, .markSkipped, .awaitApproval, .armDeadline:
                        break
                    }
                }
            }
            var (next, commands) = RunMachine.apply(state, .submitted(skips: skips), nowMs: 0, random: &random)
            let before = state
            state = next
            handle(commands, before: before)
            while finished == 0 && events < 500 {
                events += 1
                let event: RunEvent
                if !outstanding.isEmpty && Int.random(in: 0..<40, using: &random) != 0 {
                    let (id, attempt) = outstanding.remove(at: Int.random(in: 0..<outstanding.count, using: &random))
                    let status: AttemptStatus = [.succeeded, .succeeded, .succeeded, .failed, .timedOut, .lost, .interrupted].randomElement(using: &random)!
                    event = .attemptFinished(step: id, attempt: attempt, status: status, exitCode: 1, retryable: true, error: nil)
                } else if !outstanding.isEmpty {
                    event = [RunEvent.canceled, .deadlinePassed].randomElement(using: &random)!
                    stopped = true
                } else {
                    break
                }
                let previous = state
                (next, commands) = RunMachine.apply(state, event, nowMs: Int64(events), random: &random)
                state = next
                handle(commands, before: previous)
                // A cancel asks workers to stop; they answer with a canceled outcome.
                for command in commands {
                    if case .cancelAttempts(let ids) = command {
                        for id in ids where state.steps[id]?.lifecycle == .active {
                            let attempt = state.steps[id]!.attempts.attempt
                            outstanding.removeAll { $0.0 == id }
                            outstanding.append((id, attempt))
                        }
                    }
                }
            }
            #expect(finished == 1, "the run did not finish: phase \(state.phase)")
            #expect(state.phase == .done)
            for step in finally { #expect(enqueued[step.id] == 1, "finally step \(step.id) ran \(enqueued[step.id] ?? 0) times") }
            for step in onFailure {
                // on_failure runs at most once, never for a run that did not fail, and exactly once
                // for a failed run nobody stopped.
                let runs = enqueued[step.id] ?? 0
                #expect(runs <= 1)
                if state.outcome != .failed { #expect(runs == 0, "on_failure \(step.id) ran for outcome \(state.outcome)") }
                if state.outcome == .failed && !stopped { #expect(runs == 1, "on_failure \(step.id) did not run") }
            }
            if state.outcome == .succeeded { #expect(onFailure.allSatisfy { enqueued[$0.id] == nil }) }
        }
    }
}

extension RunMachineTests {
    @Test func aDueRetryIsEnqueuedOnceAndAStartShowsItQueued() throws {
        let yaml = "pipeline: p\nsteps:\n  - { id: a, kind: noop, retry: { max_attempts: 3, backoff: { initial: 1s, jitter: none } } }\n"
        let failed = RunEvent.attemptFinished(step: "a", attempt: 1, status: .failed, exitCode: 1, retryable: true, error: "x")
        let (waiting, _) = run(RunState(try definition(yaml)), [.submitted(skips: [:]), failed])
        #expect(waiting.steps["a"]?.attempts.status == .retrying)
        let (due, commands) = run(waiting, [.retryDue(step: "a", attempt: 2), .retryDue(step: "a", attempt: 2)])
        #expect(commands == [.enqueue(step: "a", attempt: 2)])
        #expect(due.steps["a"]?.attempts.status == .queued)
        let (started, none) = run(waiting, [.attemptStarted(step: "a", attempt: 2), .attemptStarted(step: "a", attempt: 1)])
        #expect(none.isEmpty && started.steps["a"]?.attempts.status == .queued)
    }
}
