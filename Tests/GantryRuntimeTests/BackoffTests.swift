import GantryRuntime
import Logging
import Synchronization
import Testing

@Suite struct BackoffTests {
    @Test func eachFailureWaitsTwiceAsLongUpToTheCapWithinEqualJitter() {
        var backoff = Backoff(first: .milliseconds(50), cap: .seconds(2))
        let nominal: [Duration] = [.milliseconds(50), .milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800),
                                   .milliseconds(1_600), .seconds(2), .seconds(2), .seconds(2)]
        for (failure, expected) in nominal.enumerated() {
            let wait = backoff.failed()
            #expect(backoff.failures == failure + 1)
            // Equal jitter: at least half the nominal delay, at most all of it.
            #expect(wait >= expected / 2 && wait <= expected, "failure \(failure + 1): \(wait) for a nominal \(expected)")
        }
        // Far past the cap nothing overflows.
        for _ in 0..<100 { #expect(backoff.failed() <= .seconds(2)) }
    }

    @Test func aSuccessStartsAgainFromTheFirstWait() {
        var backoff = Backoff(first: .milliseconds(10), cap: .seconds(1))
        for _ in 0..<6 { _ = backoff.failed() }
        backoff.succeeded()
        #expect(backoff.failures == 0)
        #expect(backoff.failed() <= .milliseconds(10))
    }

    @Test func theWaitsOfAFleetAreSpreadNotInLockstep() {
        // A hundred processes that failed at the same moment do not all retry at the same moment.
        let waits = (0..<100).map { _ in
            var backoff = Backoff(first: .milliseconds(400), cap: .seconds(2))
            return backoff.failed()
        }
        #expect(Set(waits).count > 50)
    }

    @Test func retryUntilSuccessTriesAgainUntilTheBodySucceeds() async {
        let tries = Mutex(0)
        await retryUntilSuccess("count to three", logger: Logger(label: "test"), backoff: Backoff(first: .milliseconds(1), cap: .milliseconds(2))) {
            () throws(Failure) in
            let attempt = tries.withLock { count in
                count += 1
                return count
            }
            if attempt < 3 { throw Failure() }
        }
        #expect(tries.withLock { $0 } == 3)
    }

    @Test func retryUntilSuccessGivesUpWhenAskedTo() async {
        let tries = Mutex(0)
        await retryUntilSuccess("fail for ever", logger: Logger(label: "test"), backoff: Backoff(first: .milliseconds(1), cap: .milliseconds(2)),
                                giveUp: { tries.withLock { $0 } >= 5 }) { () throws(Failure) in
            tries.withLock { $0 += 1 }
            throw Failure()
        }
        #expect(tries.withLock { $0 } == 5)
    }

    struct Failure: Error {}
}
