import Foundation
import GantryCore
import GantryPostgres
import GantryRuntime
import GantryTestSupport
import Testing

/// Runs created in bulk (`gantry enqueue`, the benchmark) go in through COPY's text format:
/// every byte of a value must come back as it went in.
@Suite struct RunStoreTests {
    @Test func awkwardTextsSurviveTheCopyIntoRunsAndSteps() async throws {
        let env = try await TestEnvironment.make()
        let db = try env.db()
        var random = SystemRandomNumberGenerator()
        let inputs = #"{"a":"tab\there","nl":"x\ny","cr":"\r","bs":"back\\slash \\N","raw":"\N ünïcødé 🚀"}"#
            .replacingOccurrences(of: "\\t", with: "\t")
        let names = ["tab\tpipeline", "line\nbreak", #"back\slash"#, #"\N"#, "ünïcødé 🚀", "plain"]
        let runs = names.map { name in
            let id = Identifiers.newRunID(nowMs: WallClock.nowMs(), using: &random)
            return NewRun(id: id, namespace: env.namespace, pipeline: name, submitter: name + "-by", steps: [StepRecord(
                key: StepKey(runID: id, stepID: "main"), kind: "noop", timeout: .milliseconds(1_500), inputs: inputs,
                state: StepState(status: .queued, attempt: 1, policy: RetryPolicy(maxAttempts: 4))
            )])
        }
        try await RunStore().create(runs, on: db)
        let stored = try await RunStore().runs(runs.map(\.id), on: db)
        #expect(Set(stored.map(\.pipeline)) == Set(names))
        for run in runs {
            let rows = try await db.run(
                """
                SELECT r.pipeline, r.submitter, r.status, s.inputs, s.retry, s.timeout_ms, s.attempt, s.charged, s.status AS step_status
                FROM runs r JOIN steps s ON s.run_id = r.id WHERE r.id = $1
                """,
                [run.id]
            )
            #expect(rows.count == 1)
            let row = rows[0]
            #expect(row.string("pipeline") == run.pipeline)
            #expect(row.string("submitter") == run.submitter)
            #expect(row.string("status") == "running")
            #expect(row.string("inputs") == inputs)
            #expect(row.string("retry") == run.steps[0].state.policy.json.jsonText)
            #expect(row.int("timeout_ms") == 1_500)
            #expect(row.int("attempt") == 1 && row.int("charged") == 0)
            #expect(row.string("step_status") == "queued")
        }
    }

    @Test func aBatchWithARunThatExistsAlreadyWritesNothing() async throws {
        let env = try await TestEnvironment.make()
        let db = try env.db()
        var random = SystemRandomNumberGenerator()
        func newRun(_ id: String) -> NewRun {
            NewRun(id: id, namespace: env.namespace, pipeline: "p", submitter: "s", steps: [StepRecord(
                key: StepKey(runID: id, stepID: "main"), kind: "noop", timeout: .seconds(1), inputs: "{}",
                state: StepState(status: .queued, attempt: 1, policy: RetryPolicy())
            )])
        }
        let first = newRun(Identifiers.newRunID(nowMs: WallClock.nowMs(), using: &random))
        try await RunStore().create([first], on: db)
        let fresh = newRun(Identifiers.newRunID(nowMs: WallClock.nowMs(), using: &random))
        await #expect(throws: PostgresError.self) { try await RunStore().create([fresh, first], on: db) }
        #expect(try await RunStore().runs([fresh.id], on: db).isEmpty)
        #expect(try await db.run("SELECT 1 FROM steps WHERE run_id = $1", [fresh.id]).isEmpty)
        // The connection is usable after the failed COPY.
        try await RunStore().create([fresh], on: db)
        #expect(try await RunStore().runs([fresh.id], on: db).count == 1)
    }
}
