import Foundation
import GantryCore
import GantryPostgres
import GantryRuntime
import GantryTestSupport
import Logging
import Testing

/// The attempts ledger: idempotent, fenced by its unique index, append-only for
/// everyone, and migrations that can run twice.
@Suite struct LedgerTests {
    func result(_ runID: String, worker: String, delivery: String, status: AttemptStatus = .succeeded) -> AttemptResult {
        AttemptResult(
            key: AttemptKey(step: StepKey(runID: runID, stepID: "main"), attempt: 1), kind: "noop", status: status,
            worker: worker, startedAtUs: WallClock.nowUs(), finishedAtUs: WallClock.nowUs(), deliveryID: delivery
        )
    }

    func newRun() -> String {
        var random = SystemRandomNumberGenerator()
        return Identifiers.newRunID(nowMs: WallClock.nowMs(), using: &random)
    }

    @Test func recordingTwiceIsIdempotentAndALateOtherWriterIsStale() async throws {
        let env = try await TestEnvironment.make()
        let db = try env.db()
        let ledger = AttemptLedger()
        let run = newRun()
        let mine = result(run, worker: "w1", delivery: "1-0")
        #expect(try await ledger.record([mine], on: db)[mine.key] == .recorded)
        // The same writer retrying its commit.
        #expect(try await ledger.record([mine], on: db)[mine.key] == .alreadyRecorded)
        // Another writer for the same attempt (a stale worker): kept, but not current.
        let late = result(run, worker: "w2", delivery: "1-0", status: .failed)
        #expect(try await ledger.record([late], on: db)[late.key] == .stale(current: .succeeded))
        #expect(try await ledger.record([late], on: db)[late.key] == .stale(current: .succeeded))
        let rows = try await ledger.attempts(ofRun: run, on: db)
        #expect(rows.map(\.status) == [.succeeded, .stale])
        // The reaper's `lost` names the silent worker and its delivery; that worker's
        // late outcome is still stale, not mistaken for its own retried commit.
        let other = newRun()
        let lost = result(other, worker: "w1", delivery: "2-0", status: .lost)
        _ = try await ledger.record([lost], on: db)
        let lateSuccess = result(other, worker: "w1", delivery: "2-0")
        #expect(try await ledger.record([lateSuccess], on: db)[lateSuccess.key] == .stale(current: .lost))
        #expect(rows.map(\.worker) == ["w1", "w2"])
        #expect(try await ledger.current([mine.key], on: db)[mine.key]?.worker == "w1")
    }

    /// A batch is first written with a plain insert, which fails as a whole when one attempt of
    /// it already has an outcome: every fresh attempt of that batch must still be recorded once,
    /// and each other one get the answer it would get alone.
    @Test func aBatchWithOneTakenAttemptStillRecordsEveryFreshOne() async throws {
        let env = try await TestEnvironment.make()
        let db = try env.db()
        let ledger = AttemptLedger()
        let (taken, retried, fresh1, fresh2) = (newRun(), newRun(), newRun(), newRun())
        _ = try await ledger.record([result(taken, worker: "reaper", delivery: "5-0", status: .lost)], on: db)
        let mine = result(retried, worker: "w1", delivery: "6-0")
        _ = try await ledger.record([mine], on: db)
        let batch = [
            result(fresh1, worker: "w1", delivery: "7-0"), result(taken, worker: "w1", delivery: "5-0"),
            mine, result(fresh2, worker: "w1", delivery: "8-0", status: .failed),
        ]
        let outcomes = try await ledger.record(batch, on: db)
        #expect(outcomes[batch[0].key] == .recorded)
        #expect(outcomes[batch[1].key] == .stale(current: .lost))
        #expect(outcomes[batch[2].key] == .alreadyRecorded)
        #expect(outcomes[batch[3].key] == .recorded)
        #expect(try await ledger.attempts(ofRun: fresh1, on: db).map(\.status) == [.succeeded])
        #expect(try await ledger.attempts(ofRun: fresh2, on: db).map(\.status) == [.failed])
        #expect(try await ledger.attempts(ofRun: taken, on: db).map(\.status) == [.lost, .stale])
        #expect(try await ledger.attempts(ofRun: retried, on: db).map(\.status) == [.succeeded])
    }

    @Test func awkwardTextsSurviveTheArrayParametersUnchanged() async throws {
        let env = try await TestEnvironment.make()
        let db = try env.db()
        let run = newRun()
        var result = result(run, worker: "w\"1\\", delivery: "9-0", status: .failed)
        result.error = #"quote " backslash \ braces {a,b} comma , NULL "NULL" ünïcødé 🚀"#
        result.outputs = #"{"k":"v \" w"}"#
        #expect(try await AttemptLedger().record([result], on: db)[result.key] == .recorded)
        let stored = try #require(try await AttemptLedger().attempts(ofRun: run, on: db).first)
        #expect(stored.error == result.error)
        #expect(stored.worker == result.worker)
        #expect(stored.outputs == result.outputs)
    }

    @Test func attemptsCannotBeChangedOrDeletedByTheApplicationOrTheOwner() async throws {
        let env = try await TestEnvironment.make()
        let run = newRun()
        _ = try await AttemptLedger().record([result(run, worker: "w1", delivery: "1-0")], on: env.db())
        for connection in [try env.db(), try env.adminDB()] {
            for statement in [
                "UPDATE attempts SET status = 'failed' WHERE run_id = '\(run)'",
                "DELETE FROM attempts WHERE run_id = '\(run)'",
                "TRUNCATE attempts",
            ] {
                do {
                    try await connection.run(statement)
                    Issue.record("\(statement) succeeded")
                } catch {
                    // 42501: insufficient privilege (the app role's grants, or the trigger).
                    #expect(error.sqlState == "42501")
                }
            }
        }
        #expect(try await AttemptLedger().attempts(ofRun: run, on: env.db()).map(\.status) == [.succeeded])
    }

    @Test func theWorkersRoleRecordsAttemptsAndReadsPoliciesAndNothingElse() async throws {
        let env = try await TestEnvironment.make()
        let run = newRun()
        let worker = try env.workerDB()
        #expect(try await AttemptLedger().record([result(run, worker: "w1", delivery: "1-0")], on: worker).values.first == .recorded)
        #expect(try await AttemptLedger().attempts(ofRun: run, on: worker).map(\.status) == [.succeeded])
        try await worker.run("SELECT name, definition FROM environments")
        for statement in [
            "UPDATE runs SET status = 'succeeded'",
            "UPDATE steps SET status = 'succeeded'",
            "SELECT * FROM steps",
            "SELECT hash FROM tokens",
            "INSERT INTO tokens (id, namespace, name, hash, roles) VALUES (gen_random_uuid(), 'x', 'x', 'x', '{admin}')",
            "INSERT INTO approvals (run_id, step_id, decision, approver) VALUES ('\(run)', 's', 'approved', 'w1')",
            "INSERT INTO actions (namespace, actor, action, accepted) VALUES ('x', 'w1', 'run.cancel', true)",
            "UPDATE environments SET definition = ''",
            "SELECT * FROM environment_changes",
        ] {
            do {
                try await worker.run(statement)
                Issue.record("the worker's role could: \(statement)")
            } catch {
                #expect(error.sqlState == "42501", "\(statement): \(error)")
            }
        }
    }

    @Test func migratingAgainChangesNothing() async throws {
        let env = try await TestEnvironment.make()
        let report = try await Migrator().migrate(try env.adminDB(), logger: Logger(label: "test"))
        #expect(report.applied.isEmpty)
        #expect(report.current == Migration.all.last!.version)
    }

    @Test func aDatabaseURLIsNeverShownWithItsPassword() throws {
        let url = try PostgresURL(parsing: "postgresql://gantry:s3cret-Pa55@127.0.0.1:5432/gantry")
        #expect(!url.description.contains("s3cret"))
        #expect(url.description.contains("127.0.0.1"))
        #expect(throws: PostgresError.self) { try PostgresURL(parsing: "mysql://x") }
    }
}
