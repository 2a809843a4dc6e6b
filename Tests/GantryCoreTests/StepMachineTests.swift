import GantryCore
import Testing

@Suite struct StepMachineTests {
    let policy = RetryPolicy(maxAttempts: 3, initial: .seconds(2), max: .seconds(60), jitter: .none)
    let now: Int64 = 1_000_000

    func apply(_ state: StepState, _ event: StepEvent) -> StepMachine.Transition {
        var random = SeededRandom(seed: 1)
        return StepMachine.apply(state, event, nowMs: now, random: &random)
    }

    func finished(_ attempt: Int, _ status: AttemptStatus, exit: Int32? = nil, retryable: Bool = true) -> StepEvent {
        .attemptFinished(attempt: attempt, status: status, exitCode: exit, retryable: retryable, error: status == .succeeded ? nil : "boom")
    }

    // MARK: Table of transitions from a queued first attempt

    struct Row: Sendable, CustomTestStringConvertible {
        let status: AttemptStatus
        let exit: Int32?
        let retryable: Bool
        let next: StepStatus
        let attempt: Int
        let charged: Int
        let commands: [StepCommand]
        var testDescription: String { "\(status.rawValue) exit=\(exit.map(String.init) ?? "-") retryable=\(retryable)" }
    }

    static let rows: [Row] = [
        Row(status: .succeeded, exit: nil, retryable: true, next: .succeeded, attempt: 1, charged: 1, commands: [.finished(.succeeded)]),
        Row(status: .failed, exit: 1, retryable: true, next: .retrying, attempt: 2, charged: 1, commands: [.scheduleRetry(attempt: 2, dueAtMs: 1_002_000)]),
        Row(status: .failed, exit: 1, retryable: false, next: .failed, attempt: 1, charged: 1, commands: [.finished(.failed)]),
        Row(status: .timedOut, exit: nil, retryable: true, next: .retrying, attempt: 2, charged: 1, commands: [.scheduleRetry(attempt: 2, dueAtMs: 1_002_000)]),
        Row(status: .lost, exit: nil, retryable: true, next: .queued, attempt: 2, charged: 1, commands: [.enqueue(attempt: 2)]),
        Row(status: .interrupted, exit: nil, retryable: true, next: .queued, attempt: 2, charged: 0, commands: [.enqueue(attempt: 2)]),
        Row(status: .canceled, exit: nil, retryable: true, next: .canceled, attempt: 1, charged: 0, commands: [.finished(.canceled)]),
        Row(status: .invalid, exit: nil, retryable: true, next: .failed, attempt: 1, charged: 1, commands: [.finished(.failed)]),
    ]

    @Test(arguments: rows)
    func firstAttemptOutcome(row: Row) {
        let start = StepState(policy: policy)
        let transition = apply(start, finished(1, row.status, exit: row.exit, retryable: row.retryable))
        #expect(transition.changed)
        #expect(transition.state.status == row.next)
        #expect(transition.state.attempt == row.attempt)
        #expect(transition.state.charged == row.charged)
        #expect(transition.commands == row.commands)
    }

    @Test func staleOutcomesNeverDecide() {
        let start = StepState(policy: policy)
        let transition = apply(start, finished(1, .stale))
        #expect(!transition.changed)
        #expect(transition.state == start)
    }

    @Test func theLastAllowedFailureFailsTheStep() {
        let state = StepState(status: .queued, attempt: 3, charged: 2, policy: policy)
        let transition = apply(state, finished(3, .failed, exit: 1))
        #expect(transition.state.status == .failed)
        #expect(transition.commands == [.finished(.failed)])
        // A lost last attempt fails too: lost attempts count.
        #expect(apply(state, finished(3, .lost)).state.status == .failed)
        // An interrupted one does not count and goes out again.
        let drained = apply(state, finished(3, .interrupted))
        #expect(drained.state.status == .queued && drained.state.attempt == 4 && drained.state.charged == 2)
    }

    @Test func exitCodesOutsideTheListAreFinal() {
        let picky = RetryPolicy(maxAttempts: 5, onExitCodes: [75])
        let state = StepState(policy: picky)
        #expect(apply(state, finished(1, .failed, exit: 1)).state.status == .failed)
        #expect(apply(state, finished(1, .failed, exit: 75)).state.status == .retrying)
    }

    @Test func timeoutsAreRetriedOnlyWhenAllowed() {
        let state = StepState(policy: RetryPolicy(maxAttempts: 3, retryOn: [.failed]))
        #expect(apply(state, finished(1, .timedOut)).state.status == .failed)
    }

    @Test func backoffGrowsWithEachRetry() {
        var state = StepState(policy: policy)
        var dues: [Int64] = []
        for attempt in 1...2 {
            let transition = apply(state, finished(attempt, .failed, exit: 1))
            guard case .scheduleRetry(_, let due)? = transition.commands.first else {
                Issue.record("expected a scheduled retry")
                return
            }
            dues.append(due - now)
            state = transition.state
            state.status = .queued
        }
        #expect(dues == [2_000, 4_000])
    }

    @Test func outcomesOfOldAttemptsAndDuplicatesChangeNothing() {
        let start = StepState(policy: policy)
        let retried = apply(start, finished(1, .failed, exit: 1)).state
        // The same event again (re-delivered) and an outcome for attempt 1 now that 2 is current.
        #expect(!apply(retried, finished(1, .failed, exit: 1)).changed)
        #expect(!apply(retried, finished(1, .succeeded)).changed)
        // An outcome for a future attempt is not ours to apply either.
        #expect(!apply(start, finished(2, .succeeded)).changed)
    }

    @Test func aRetryingStepAcceptsTheOutcomeOfItsNextAttempt() {
        let retrying = apply(StepState(policy: policy), finished(1, .failed, exit: 1)).state
        #expect(retrying.status == .retrying)
        let done = apply(retrying, finished(2, .succeeded))
        #expect(done.state.status == .succeeded && done.state.dueAtMs == nil)
    }

    @Test func terminalStatesNeverChange() {
        for status in [StepStatus.succeeded, .failed, .canceled] {
            let state = StepState(status: status, attempt: 1, charged: 1, policy: policy)
            for event in [finished(1, .succeeded), finished(1, .failed), finished(1, .lost), .canceled] {
                #expect(!apply(state, event).changed)
            }
        }
    }

    @Test func cancelStopsAQueuedOrRetryingStep() {
        for status in [StepStatus.queued, .retrying] {
            let transition = apply(StepState(status: status, attempt: 2, charged: 1, policy: policy, dueAtMs: 5), .canceled)
            #expect(transition.state.status == .canceled)
            #expect(transition.state.dueAtMs == nil)
            #expect(transition.commands == [.finished(.canceled)])
        }
    }

    // MARK: Properties over random histories

    @Test func randomHistoriesKeepTheInvariants() {
        var random = SeededRandom(seed: 2024)
        let statuses = AttemptStatus.allCases
        for _ in 0..<2_000 {
            let maxAttempts = Int.random(in: 1...5, using: &random)
            var state = StepState(policy: RetryPolicy(maxAttempts: maxAttempts, initial: .milliseconds(10), max: .seconds(1)))
            var finishedCount = 0
            for _ in 0..<40 {
                let event: StepEvent
                if Int.random(in: 0..<30, using: &random) == 0 {
                    event = .canceled
                } else {
                    // Mostly the current attempt, sometimes an old or future one.
                    let attempt = max(1, state.attempt + Int.random(in: -2...1, using: &random))
                    event = .attemptFinished(
                        attempt: attempt, status: statuses.randomElement(using: &random)!,
                        exitCode: Int32.random(in: 0...3, using: &random), retryable: Bool.random(using: &random), error: nil
                    )
                }
                let before = state
                let transition = StepMachine.apply(state, event, nowMs: 0, random: &random)
                state = transition.state
                #expect(state.attempt >= before.attempt)
                #expect(state.charged <= state.policy.maxAttempts)
                #expect(state.charged <= state.attempt)
                if before.status.isTerminal { #expect(!transition.changed && state == before) }
                if !transition.changed { #expect(transition.commands.isEmpty && state == before) }
                for command in transition.commands {
                    switch command {
                    case .enqueue(let attempt), .scheduleRetry(let attempt, _):
                        #expect(attempt == state.attempt && attempt == before.attempt + 1)
                        #expect(!state.status.isTerminal)
                    case .finished(let status):
                        #expect(status == state.status && status.isTerminal)
                        finishedCount += 1
                    }
                }
                #expect((state.status == .retrying) == (state.dueAtMs != nil))
            }
            #expect(finishedCount <= 1)
        }
    }

    @Test func everyHistoryOfCurrentOutcomesEnds() {
        // Feeding only current-attempt failures, a step always ends within its attempt budget
        // (interruptions aside, which do not count).
        var random = SeededRandom(seed: 77)
        for maxAttempts in 1...6 {
            var state = StepState(policy: RetryPolicy(maxAttempts: maxAttempts, jitter: .full))
            var steps = 0
            while !state.status.isTerminal {
                let status: AttemptStatus = [.failed, .timedOut, .lost].randomElement(using: &random)!
                state = StepMachine.apply(state, .attemptFinished(attempt: state.attempt, status: status, exitCode: 1, retryable: true, error: nil), nowMs: 0, random: &random).state
                steps += 1
            }
            #expect(state.status == .failed)
            #expect(steps == maxAttempts)
            #expect(state.charged == maxAttempts)
        }
    }
}
