import GantryRedis
import GantryTestSupport
import Testing

/// One `RedisConnection` shared by concurrent callers: every caller gets its own reply.
@Suite struct RedisConnectionTests {
    @Test func concurrentCallersNeverReceiveEachOthersReplies() async throws {
        let env = try await TestEnvironment.make()
        let redis = env.redis()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for caller in 0..<4 {
                group.addTask {
                    for round in 0..<300 {
                        let text = "caller-\(caller)-round-\(round)"
                        let reply = try await redis.command(["ECHO", text])
                        #expect(reply.string == text, "caller \(caller) got \(reply)")
                        if reply.string != text { return }
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}
