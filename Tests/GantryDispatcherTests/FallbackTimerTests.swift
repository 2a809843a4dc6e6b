import GantryCore
@testable import GantryDispatcher
import GantryRedis
import Logging
import Testing

/// The fallback timers of an event stream and of a followed log: without any news they wake
/// their subscription every `fallback`, and they end when the stream's task cancels them (each
/// runs as the stream's child task). No server: nothing is ever announced, and nothing connects.
@Suite(.timeLimit(.minutes(1))) struct FallbackTimerTests {
    static func nowhere() throws -> RedisURL { try RedisURL(parsing: "redis://127.0.0.1:1/0") }

    @Test func aRunStreamIsWokenByItsTimerAloneAndTheTimerEndsWhenCancelled() async throws {
        let feed = RunChangeFeed(
            keys: QueueKeys(namespace: "test"), redisURL: try Self.nowhere(), clientName: "test",
            fallback: .milliseconds(20), logger: Logger(label: "test")
        )
        let subscription = feed.subscribe("run-1")
        defer { feed.unsubscribe(subscription) }
        var wakes = subscription.changes.makeAsyncIterator()
        // The group returns only once the timer has ended.
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await feed.fallbackTimer(subscription) }
            for _ in 0..<3 { #expect(await wakes.next() != nil) }
            group.cancelAll()
        }
    }

    @Test func aFollowedLogIsWokenByItsTimerAloneAndTheTimerEndsWhenCancelled() async throws {
        let feed = LogTailFeed(
            keys: QueueKeys(namespace: "test"), redisURL: try Self.nowhere(), replica: "test",
            fallback: .milliseconds(20), logger: Logger(label: "test")
        )
        let subscription = feed.subscribe(AttemptKey(step: StepKey(runID: "run-1", stepID: "main"), attempt: 1), from: "0")
        defer { feed.unsubscribe(subscription) }
        var wakes = subscription.news.makeAsyncIterator()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await feed.fallbackTimer(subscription) }
            for _ in 0..<3 { #expect(await wakes.next() != nil) }
            group.cancelAll()
        }
        // A log read once, not followed, has no timer.
        await feed.fallbackTimer(nil)
    }
}
