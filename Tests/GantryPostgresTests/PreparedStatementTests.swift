import GantryPostgres
import GantryTestSupport
import Testing

/// Registered statements are prepared once per connection, alone or in a pipeline,
/// and again on the next connection after the old one is lost.
@Suite struct PreparedStatementTests {
    static let echo = PreparedStatements.register("gantry_test_echo", "SELECT $1::text AS echo, pg_backend_pid() AS pid")
    static let prepared = "SELECT count(*) AS n FROM pg_prepared_statements WHERE name = 'gantry_test_echo'"

    @Test func aRegisteredStatementIsPreparedOnceAndRunsAloneOrInAPipeline() async throws {
        let env = try await TestEnvironment.make()
        let db = try env.db()
        #expect(try await db.run(Self.echo, ["one"])[0].string("echo") == "one")
        #expect(try await db.run(Self.prepared)[0].int("n") == 1)
        // In a pipeline, beside plain statements, twice in one round trip.
        let results = try await db.runPipeline([
            ("SELECT 1 AS x", []), (Self.echo, ["two"]), (Self.echo, ["three"]), (Self.prepared, []),
        ])
        #expect(results.map { $0.count } == [1, 1, 1, 1])
        #expect(results[1][0].string("echo") == "two" && results[2][0].string("echo") == "three")
        #expect(results[3][0].int("n") == 1)

        // A fresh connection prepares it inside the pipeline itself, and a failing statement
        // after it still reports its own error.
        let fresh = try env.db()
        await #expect(throws: PostgresError.self) {
            _ = try await fresh.runPipeline([(Self.echo, ["four"]), ("SELECT 1/0", [])])
        }
        #expect(try await fresh.run(Self.echo, ["five"])[0].string("echo") == "five")
    }

    @Test func aLostConnectionPreparesItAgain() async throws {
        let env = try await TestEnvironment.make()
        let db = try env.db()
        let first = try await db.run(Self.echo, ["before"])[0].int("pid")
        let admin = try env.db()
        _ = try await admin.run("SELECT pg_terminate_backend($1::int)", [String(first ?? 0)])
        // The first call after the loss fails (the caller decides whether to retry); the next reconnects.
        _ = try? await db.run(Self.echo, ["lost"])
        let rows = try await db.run(Self.echo, ["after"])
        #expect(rows[0].string("echo") == "after")
        #expect(rows[0].int("pid") != first)
    }
}
