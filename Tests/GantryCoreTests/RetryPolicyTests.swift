import GantryCore
import Testing

@Suite struct RetryPolicyTests {
    @Test func withoutJitterDelaysDoubleUpToTheCap() {
        let policy = RetryPolicy(maxAttempts: 10, initial: .milliseconds(100), max: .seconds(1), jitter: .none)
        var random = SeededRandom(seed: 1)
        let delays = (2...8).map { policy.delay(beforeAttempt: $0, using: &random).milliseconds }
        #expect(delays == [100, 200, 400, 800, 1_000, 1_000, 1_000])
    }

    @Test func fullJitterStaysWithinZeroAndTheExponentialDelay() {
        let policy = RetryPolicy(maxAttempts: 10, initial: .milliseconds(100), max: .seconds(5), jitter: .full)
        var random = SeededRandom(seed: 42)
        for attempt in 2...12 {
            let bound = min(100 * (Int64(1) << (attempt - 2)), 5_000)
            var seen: Set<Int64> = []
            for _ in 0..<200 {
                let delay = policy.delay(beforeAttempt: attempt, using: &random).milliseconds
                #expect(delay >= 0 && delay <= bound)
                seen.insert(delay)
            }
            // Jitter really spreads the delays.
            #expect(seen.count > 10)
        }
    }

    @Test func equalJitterKeepsAtLeastHalf() {
        let policy = RetryPolicy(maxAttempts: 5, initial: .seconds(1), max: .seconds(60), jitter: .equal)
        var random = SeededRandom(seed: 7)
        for _ in 0..<500 {
            let delay = policy.delay(beforeAttempt: 3, using: &random).milliseconds
            #expect(delay >= 1_000 && delay <= 2_000)
        }
    }

    @Test func seededRandomnessMakesDelaysReproducible() {
        let policy = RetryPolicy.exponentialJitter(maxAttempts: 5, initial: .seconds(2), max: .seconds(60))
        var a = SeededRandom(seed: 99)
        var b = SeededRandom(seed: 99)
        let first = (2...5).map { policy.delay(beforeAttempt: $0, using: &a) }
        let second = (2...5).map { policy.delay(beforeAttempt: $0, using: &b) }
        #expect(first == second)
    }

    @Test func hugeAttemptNumbersDoNotOverflow() {
        let policy = RetryPolicy(maxAttempts: 100, initial: .seconds(1), max: .seconds(30), jitter: .none)
        var random = SeededRandom(seed: 0)
        #expect(policy.delay(beforeAttempt: 10_000, using: &random) == .seconds(30))
    }

    @Test func exitCodeListLimitsWhichFailuresAreRetried() {
        let policy = RetryPolicy(maxAttempts: 3, onExitCodes: [1, 75])
        #expect(policy.allows(.failed, exitCode: 75))
        #expect(!policy.allows(.failed, exitCode: 2))
        #expect(policy.allows(.failed, exitCode: nil))
        #expect(policy.allows(.timeout, exitCode: nil))
        let noTimeouts = RetryPolicy(maxAttempts: 3, retryOn: [.failed, .lost])
        #expect(!noTimeouts.allows(.timeout, exitCode: nil))
    }

    @Test func maxAttemptsIsAtLeastOne() {
        #expect(RetryPolicy(maxAttempts: 0).maxAttempts == 1)
        #expect(RetryPolicy.never.maxAttempts == 1)
    }

    @Test func storedFormRoundTrips() {
        let policies = [
            RetryPolicy(),
            RetryPolicy(maxAttempts: 7, initial: .milliseconds(250), max: .seconds(9), jitter: .equal, onExitCodes: [3, 4], retryOn: [.lost]),
            RetryPolicy.never,
        ]
        for policy in policies {
            #expect(RetryPolicy(json: policy.json) == policy)
            #expect(RetryPolicy(json: JSONValue.parse(policy.json.jsonText)!) == policy)
        }
        #expect(RetryPolicy(json: .string("nope")) == nil)
    }
}
