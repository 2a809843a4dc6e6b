import GantryPostgres
import GantryTestSupport
import Testing

/// One `PostgresConnection` shared by concurrent callers: every caller gets its own rows.
@Suite struct PostgresConnectionTests {
    @Test func concurrentCallersNeverReceiveEachOthersRows() async throws {
        let env = try await TestEnvironment.make()
        let db = try env.db()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for caller in 0..<4 {
                group.addTask {
                    for round in 0..<100 {
                        let text = "caller-\(caller)-round-\(round)"
                        let rows = try await db.run("SELECT $1::text AS echo", [text])
                        #expect(rows[0].string("echo") == text)
                        if rows[0].string("echo") != text { return }
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}
