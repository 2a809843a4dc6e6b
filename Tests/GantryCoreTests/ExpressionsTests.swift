import Foundation
import GantryCore
import Testing

@Suite struct ExpressionsTests {
    let run = Expressions.RunContext(
        id: "01a21e3f-40e1-7f49-abbd-bfc8e17d6d6b", pipeline: "staging", environment: "staging",
        sha: "3f2a9c1d", ref: "main", submitter: "ci", params: ["region": "eu"]
    )

    @Test func findsEachExpressionOnceInOrder() {
        let inputs = JSONValue.object([
            "a": .string("x ${{ run.sha }} y ${{run.sha}}"),
            "b": .array([.string("${{ steps.build.outputs.image }}"), .number(3)]),
            "c": .object(["d": .string("${{ secrets.TOKEN }}")]),
        ])
        #expect(Expressions.references(in: inputs) == ["run.sha", "steps.build.outputs.image", "secrets.TOKEN"])
        #expect(Expressions.stepsRead(by: Expressions.references(in: inputs)) == ["build"])
    }

    @Test func bindsRunValuesAndOutputsButNeverSecrets() {
        let values = Expressions.bind(
            ["run.id", "run.sha", "run.short_sha", "run.params.region", "run.params.missing", "steps.build.outputs.image",
             "steps.build.outputs.count", "steps.build.outputs.none", "secrets.TOKEN", "unknown.thing"],
            run: run, outputs: ["build": ["image": .string("api:1"), "count": .number(3)]]
        )
        #expect(values == [
            "run.id": run.id, "run.sha": "3f2a9c1d", "run.short_sha": "3f2a9c1", "run.params.region": "eu",
            "run.params.missing": "", "steps.build.outputs.image": "api:1", "steps.build.outputs.count": "3",
            "steps.build.outputs.none": "",
        ])
    }

    @Test func substitutesBoundValuesAndLeavesTheRestAsWritten() {
        let values = ["run.sha": "abc", "steps.b.outputs.x": "$(rm -rf /)"]
        #expect(Expressions.substitute("tag ${{ run.sha }}-${{run.sha}}", values) == "tag abc-abc")
        #expect(Expressions.substitute("${{ secrets.T }} stays", values) == "${{ secrets.T }} stays")
        // Values are data: substituted once, never re-read as expressions.
        #expect(Expressions.substitute("${{ steps.b.outputs.x }}", values) == "$(rm -rf /)")
        #expect(Expressions.substitute("unclosed ${{ run.sha", values) == "unclosed ${{ run.sha")
        #expect(Expressions.substitute(.object(["k": .array([.string("${{ run.sha }}")])]), values) == .object(["k": .array([.string("abc")])]))
    }
}

/// The hand-written JSON of the API views reads back as the same value.
@Suite struct RunViewJSONTests {
    @Test func roundTripsThroughJSONDecoder() throws {
        let attempt = AttemptView(attempt: 2, status: "failed", worker: "w\"1", exitCode: 3, error: "line\nbreak \u{1}",
                                  startedAt: "2026-11-27T18:47:41.662Z", finishedAt: "2026-11-27T18:47:41.962Z",
                                  durationMs: 300.5, outputs: ["image": .string("api:1"), "n": .number(2), "ok": .bool(true)])
        let approvals = ApprovalView(required: 2, approvedBy: ["ann"], decisions: [.init(decision: "approved", by: "ann", comment: nil, at: "t")])
        let step = StepView(id: "gate", kind: "approval", section: "main", needs: ["a", "b"], status: "awaiting_approval", attempt: 1,
                            waitingFor: "waiting for approval (1/2)", skipReason: nil, lastError: nil, approvals: approvals, attempts: [attempt])
        let view = RunView(id: "r", pipeline: "p", environment: nil, sha: "abc", ref: "main", submitter: "ci", status: "running",
                           phase: "main", definitionSHA256: "00ff", createdAt: "c", startedAt: nil, finishedAt: nil, durationMs: 12,
                           waitingFor: nil, stopReason: "é ✓", steps: [step])
        let decoded = try JSONDecoder().decode(RunView.self, from: Data(view.jsonText.utf8))
        #expect(decoded == view)
    }
}
