import GantryCore
@testable import GantryDispatcher
import GantryRedis
import Logging
import Testing

/// The feeds' fallback loops: without any news they wake every event stream and every followed
/// log each `fallback` (an announcement can be lost), and they end when the API's task group
/// cancels them. No server: nothing is ever announced, and nothing connects.
@Suite(.timeLimit(.minutes(1))) struct FallbackTimerTests {
    static func nowhere() throws -> RedisURL { try RedisURL(parsing: "redis://127.0.0.1:1/0") }

    @Test func everyRunStreamIsWokenByTheFallbackAloneAndTheLoopEndsWhenCancelled() async throws {
        let feed = RunChangeFeed(
            keys: QueueKeys(namespace: "test"), redisURL: try Self.nowhere(), clientName: "test",
            fallback: .milliseconds(20), logger: Logger(label: "test")
        )
        let first = feed.subscribe("run-1"), second = feed.subscribe("run-2")
        defer { feed.unsubscribe(first); feed.unsubscribe(second) }
        var firstWakes = first.changes.makeAsyncIterator(), secondWakes = second.changes.makeAsyncIterator()
        // The group returns only once the loop has ended.
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await feed.runFallback() }
            for _ in 0..<3 {
                #expect(await firstWakes.next() != nil)
                #expect(await secondWakes.next() != nil)
            }
            group.cancelAll()
        }
    }

    @Test func everyFollowedLogIsWokenByTheFallbackAloneAndTheLoopEndsWhenCancelled() async throws {
        let feed = LogTailFeed(
            keys: QueueKeys(namespace: "test"), redisURL: try Self.nowhere(), replica: "test",
            fallback: .milliseconds(20), logger: Logger(label: "test")
        )
        let first = feed.subscribe(AttemptKey(step: StepKey(runID: "run-1", stepID: "main"), attempt: 1), from: "0")
        let second = feed.subscribe(AttemptKey(step: StepKey(runID: "run-2", stepID: "main"), attempt: 2), from: "0")
        defer { feed.unsubscribe(first); feed.unsubscribe(second) }
        var firstWakes = first.news.makeAsyncIterator(), secondWakes = second.news.makeAsyncIterator()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await feed.runFallback() }
            for _ in 0..<3 {
                #expect(await firstWakes.next() != nil)
                #expect(await secondWakes.next() != nil)
            }
            group.cancelAll()
        }
    }
}
