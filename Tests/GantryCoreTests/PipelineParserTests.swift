import Foundation
import GantryCore
import Testing

/// Golden tests of the validator: each broken file and the exact lines `gantry validate` prints.
@Suite struct PipelineParserTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let yaml: String
        let expected: [String]
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "empty file", yaml: "", expected: ["p.yml:1:1: the file is empty; a pipeline needs at least 'pipeline' and 'steps'"]),
        Case(name: "not YAML", yaml: "pipeline: [unclosed\n", expected: ["p.yml:2:1: not valid YAML: did not find expected ',' or ']'"]),
        Case(name: "a list, not a mapping", yaml: "- a\n- b\n", expected: ["p.yml:1:1: the pipeline must be a mapping of pipeline, description, environment, timeout, gates, concurrency, defaults, params, steps, on_failure, finally"]),
        Case(name: "missing pipeline name", yaml: "steps:\n  - { id: a, kind: noop }\n", expected: ["p.yml:1:1: missing key 'pipeline': name the pipeline, e.g. pipeline: staging"]),
        Case(name: "missing steps", yaml: "pipeline: x\n", expected: ["p.yml:1:1: missing key 'steps': a pipeline needs at least one step"]),
        Case(name: "empty steps", yaml: "pipeline: x\nsteps: []\n", expected: ["p.yml:2:8: steps is empty; a pipeline needs at least one step"]),
        Case(name: "unknown top key with suggestion", yaml: "pipeline: x\nenviroment: prod\nsteps:\n  - { id: a, kind: noop }\n",
             expected: ["p.yml:2:1: unknown key 'enviroment' in the pipeline; did you mean 'environment'?; known keys: pipeline, description, environment, timeout, gates, concurrency, defaults, params, steps, on_failure, finally"]),
        Case(name: "unknown step key", yaml: "pipeline: x\nsteps:\n  - id: a\n    kind: noop\n    need: [b]\n",
             expected: ["p.yml:5:5: unknown key 'need' in a step of steps; did you mean 'needs'?; known keys: id, name, kind, needs, when, if, timeout, retry, with"]),
        Case(name: "unknown kind with suggestion", yaml: "pipeline: x\nsteps:\n  - { id: a, kind: biuld }\n",
             expected: ["p.yml:3:20: unknown step kind 'biuld'; did you mean 'build'?; known kinds: approval, backup, build, deploy, metrics-watch, noop, notify, scan, smoke-test"]),
        Case(name: "missing id", yaml: "pipeline: x\nsteps:\n  - { kind: noop }\n", expected: ["p.yml:3:5: a step of steps has no 'id'; give every step a unique id"]),
        Case(name: "missing kind", yaml: "pipeline: x\nsteps:\n  - { id: a }\n", expected: ["p.yml:3:5: step 'a' has no 'kind'; e.g. kind: build"]),
        Case(name: "bad id", yaml: "pipeline: x\nsteps:\n  - { id: Deploy API, kind: noop }\n",
             expected: ["p.yml:3:11: step id 'Deploy API' must be 1-64 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"]),
        Case(name: "duplicate id", yaml: "pipeline: x\nsteps:\n  - { id: a, kind: noop }\n  - { id: a, kind: noop }\n",
             expected: ["p.yml:4:11: duplicate step id 'a' (first defined at line 3)"]),
        Case(name: "duplicate id across sections", yaml: "pipeline: x\nsteps:\n  - { id: a, kind: noop }\nfinally:\n  - { id: a, kind: noop }\n",
             expected: ["p.yml:5:11: duplicate step id 'a' (first defined at line 3)"]),
        Case(name: "unknown needs", yaml: "pipeline: x\nsteps:\n  - { id: build, kind: noop }\n  - { id: b, kind: noop, needs: [biuld] }\n",
             expected: ["p.yml:4:34: step 'b' needs 'biuld', which is not a step; did you mean 'build'?"]),
        Case(name: "needs itself", yaml: "pipeline: x\nsteps:\n  - { id: a, kind: noop, needs: a }\n", expected: ["p.yml:3:33: step 'a' needs itself"]),
        Case(name: "two-step cycle", yaml: "pipeline: x\nsteps:\n  - { id: a, kind: noop, needs: [b] }\n  - { id: b, kind: noop, needs: [a] }\n",
             expected: ["p.yml:4:34: needs form a cycle: a needs b, b needs a"]),
        Case(name: "three-step cycle", yaml: "pipeline: x\nsteps:\n  - { id: a, kind: noop, needs: [c] }\n  - { id: b, kind: noop, needs: [a] }\n  - { id: c, kind: noop, needs: [b] }\n",
             expected: ["p.yml:4:34: needs form a cycle: a needs c, c needs b, b needs a"]),
        Case(name: "needs in finally", yaml: "pipeline: x\nsteps:\n  - { id: a, kind: noop }\nfinally:\n  - { id: f, kind: noop, needs: [g] }\n  - { id: g, kind: noop }\n",
             expected: ["p.yml:5:26: step 'f' is in finally and cannot have needs: finally steps run after everything else, in order"]),
        Case(name: "needs across sections", yaml: "pipeline: x\nsteps:\n  - { id: a, kind: noop }\non_failure:\n  - { id: r, kind: noop, needs: [a] }\n",
             expected: ["p.yml:5:34: step 'r' in on_failure needs 'a' from steps; needs stay within one section"]),
        Case(name: "bad duration", yaml: "pipeline: x\ntimeout: 10\nsteps:\n  - { id: a, kind: noop, timeout: 5 mins }\n",
             expected: ["p.yml:2:10: timeout: '10' is not a duration: write a number and a unit (ms, s, m, h, d), e.g. 500ms, 2s, 1m30s",
                        "p.yml:4:35: timeout of step 'a': '5 mins' is not a duration: write a number and a unit (ms, s, m, h, d), e.g. 500ms, 2s, 1m30s"]),
        Case(name: "zero timeouts", yaml: "pipeline: x\ntimeout: 0s\nsteps:\n  - { id: a, kind: noop, timeout: 0ms }\n",
             expected: ["p.yml:2:10: timeout must be more than 0, e.g. 10m",
                        "p.yml:4:35: timeout of step 'a' must be more than 0, e.g. 10m"]),
        Case(name: "default timeout rounds to zero", yaml: "pipeline: x\ndefaults: { timeout: 0.4ms }\nsteps:\n  - { id: a, kind: noop }\n",
             expected: ["p.yml:2:22: defaults.timeout must be more than 0, e.g. 10m"]),
        Case(name: "backoff cap below its start", yaml: "pipeline: x\nsteps:\n  - { id: a, kind: noop, retry: { backoff: { max: 1s } } }\n  - { id: b, kind: noop, retry: { backoff: { initial: 1m, max: 30s } } }\n",
             expected: ["p.yml:3:51: retry of step 'a'.backoff.max 1s is below backoff.initial 2s; raise max or lower initial",
                        "p.yml:4:64: retry of step 'b'.backoff.max 30s is below backoff.initial 1m; raise max or lower initial"]),
        Case(name: "zero approval timeout", yaml: "pipeline: x\nsteps:\n  - { id: g, kind: approval, with: { timeout: 0s } }\n",
             expected: ["p.yml:3:36: approval step 'g': timeout must be more than 0, e.g. 4h"]),
        Case(name: "bad on_busy", yaml: "pipeline: x\nconcurrency: { group: g, on_busy: cancel }\nsteps:\n  - { id: a, kind: noop }\n",
             expected: ["p.yml:2:35: concurrency.on_busy 'cancel' is not one of queue, reject, cancel-pending"]),
        Case(name: "bad retry", yaml: "pipeline: x\nsteps:\n  - id: a\n    kind: noop\n    retry: { max_attempts: 0, backoff: { jitter: ful }, on_exit_codes: [1, 300] }\n",
             expected: ["p.yml:5:28: retry of step 'a'.max_attempts must be a whole number from 1 to 100",
                        "p.yml:5:50: retry of step 'a'.backoff.jitter 'ful' is not one of none, full, equal; did you mean 'full'?",
                        "p.yml:5:72: retry of step 'a'.on_exit_codes: '300' is not an exit code (0-255)"]),
        Case(name: "unknown gate", yaml: "pipeline: x\ngates: { confirm: OK, approve: yes }\nsteps:\n  - { id: a, kind: noop }\n",
             expected: ["p.yml:2:23: unknown key 'approve' in gates; known keys: confirm, promote_from"]),
        Case(name: "with is not a mapping", yaml: "pipeline: x\nsteps:\n  - { id: a, kind: noop, with: [1] }\n", expected: ["p.yml:3:32: with of step 'a' must be a mapping of inputs"]),
        Case(name: "expression refers to nothing", yaml: "pipeline: x\nsteps:\n  - { id: a, kind: noop, with: { log: \"${{ env.HOME }}\" } }\n",
             expected: ["p.yml:3:39: '${{ env.HOME }}' in step 'a' refers to nothing: 'env' is not run, steps or secrets"]),
        Case(name: "unknown run field", yaml: "pipeline: x\nsteps:\n  - { id: a, kind: noop, with: { log: \"${{ run.shaa }}\" } }\n",
             expected: ["p.yml:3:39: '${{ run.shaa }}' in step 'a': run has no 'shaa'; did you mean 'sha'?; use run.id, run.sha, run.short_sha, run.ref, run.environment, run.pipeline, run.submitter, run.params.NAME, run.outcome, run.started_at or run.failed_steps"]),
        Case(name: "unclosed expression", yaml: "pipeline: x\nsteps:\n  - { id: a, kind: noop, with: { log: \"${{ run.sha\" } }\n",
             expected: ["p.yml:3:39: an expression in step 'a' opens '${{' but never closes it with '}}'"]),
        Case(name: "bad secret name", yaml: "pipeline: x\nsteps:\n  - { id: a, kind: noop, with: { log: \"${{ secrets.slack-hook }}\" } }\n",
             expected: ["p.yml:3:39: '${{ secrets.slack-hook }}' in step 'a': write secrets.NAME with NAME in capitals, digits and '_'"]),
        Case(name: "outputs of a step that is not upstream", yaml: "pipeline: x\nsteps:\n  - { id: a, kind: noop }\n  - { id: b, kind: noop, with: { log: \"${{ steps.a.outputs.image }}\" } }\n",
             expected: ["p.yml:4:39: step 'b' reads outputs of 'a', which does not run before it; add 'a' to its needs"]),
        Case(name: "outputs of no step", yaml: "pipeline: x\nsteps:\n  - { id: a, kind: noop, with: { log: \"${{ steps.bild.outputs.image }}\" } }\n",
             expected: ["p.yml:3:39: step 'a' reads outputs of 'bild', which is not a step"]),
        Case(name: "malformed outputs reference", yaml: "pipeline: x\nsteps:\n  - { id: a, kind: noop, if: \"${{ steps.a.image }}\" }\n",
             expected: ["p.yml:3:30: '${{ steps.a.image }}' in step 'a': write steps.STEP_ID.outputs.NAME"]),
        Case(name: "approval without a deadline", yaml: "pipeline: x\nsteps:\n  - { id: ok, kind: approval, with: { required: 0, approver: [ann] } }\n",
             expected: ["p.yml:3:37: approval step 'ok': unknown setting 'approver'; did you mean 'approvers'?; known: required, timeout, approvers, distinct_from_submitter",
                        "p.yml:3:37: approval step 'ok': required must be a whole number from 1",
                        "p.yml:3:37: approval step 'ok' has no timeout; every wait needs a deadline, e.g. timeout: 4h"]),
        Case(name: "several problems, all listed in order", yaml: "pipeline: x\nsteps:\n  - { id: a, kind: nop }\n  - { id: a, kind: noop }\n  - { id: c, kind: noop, needs: [z] }\n",
             expected: ["p.yml:3:20: unknown step kind 'nop'; did you mean 'noop'?; known kinds: approval, backup, build, deploy, metrics-watch, noop, notify, scan, smoke-test",
                        "p.yml:4:11: duplicate step id 'a' (first defined at line 3)",
                        "p.yml:5:34: step 'c' needs 'z', which is not a step"]),
    ]

    @Test(arguments: cases)
    func brokenFilesGetExactlyTheseErrors(testCase: Case) {
        let (definition, diagnostics) = PipelineParser().parse(testCase.yaml, file: "p.yml")
        #expect(definition == nil)
        #expect(diagnostics.map(\.description) == testCase.expected)
    }

    @Test(arguments: ["development", "staging", "production"])
    func thePlatformPipelinesAreValid(name: String) throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("pipelines/\(name).yml")
        let text = try String(contentsOf: url, encoding: .utf8)
        let (definition, diagnostics) = PipelineParser().parse(text, file: url.lastPathComponent)
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        #expect(definition?.name == name)
        #expect(definition?.environment == name)
    }

    /// The shipped pipelines pass the shipped environment policies (environments/*.yml), as a
    /// CI engineer copying both would expect.
    @Test(arguments: ["production", "staging"])
    func thePlatformPipelinesPassTheirEnvironmentsPolicies(name: String) throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let pipeline = try String(contentsOf: root.appendingPathComponent("pipelines/\(name).yml"), encoding: .utf8)
        let policies = try ["production", "staging"].map { environment in
            try #require(EnvironmentPolicyParser().parse(
                try String(contentsOf: root.appendingPathComponent("environments/\(environment).yml"), encoding: .utf8), file: environment
            ).policy)
        }
        let definition = try #require(PipelineParser().parse(pipeline, file: name).definition)
        let policy = policies.first { $0.name == name }
        let request = EnvironmentRules.Request(environment: name, ref: "main", confirm: policy?.confirm, submitter: "ci")
        let result = EnvironmentRules.evaluate(definition, policy: policy, request: request, others: policies)
        #expect(throws: Never.self, "\(name)") { try result.get() }
        if name == "production" { #expect((try? result.get())?.gate == "approval") }
    }

    @Test func productionReadsAsDesigned() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("pipelines/production.yml")
        let definition = try #require(PipelineParser().parse(try String(contentsOf: url, encoding: .utf8), file: "production.yml").definition)
        #expect(definition.confirm == "DEPLOY TO PRODUCTION")
        #expect(definition.promoteFrom == "staging")
        #expect(definition.onBusy == .queue)
        #expect(definition.steps.first { $0.id == "approval" }?.inputs["distinct_from_submitter"] == .bool(true))
        #expect(definition.steps.first { $0.id == "deploy-api" }?.paths == ["services/api/**"])
        #expect(definition.steps.first { $0.id == "backup" }?.retry.maxAttempts == 3)
        #expect(definition.steps.first { $0.id == "deploy-billing" }?.needs == ["deploy-api"])
        #expect(definition.onFailure.map(\.id) == ["emergency-rollback", "incident"])
        #expect(definition.steps.first { $0.id == "watch" }?.timeout == .seconds(900))
    }
}

@Suite struct PipelineRoundTripTests {
    /// A definition without source positions, which the written form cannot keep.
    func positionless(_ definition: PipelineDefinition) -> PipelineDefinition {
        var copy = definition
        for keyPath in [\PipelineDefinition.steps, \.onFailure, \.finally] {
            copy[keyPath: keyPath] = copy[keyPath: keyPath].map { step in
                var step = step
                step.line = 0
                step.column = 0
                return step
            }
        }
        return copy
    }

    @Test(arguments: ["development", "staging", "production"])
    func writingAndReadingAgainGivesTheSamePipeline(name: String) throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("pipelines/\(name).yml")
        let original = try #require(PipelineParser().parse(try String(contentsOf: url, encoding: .utf8), file: name).definition)
        let written = try PipelineWriter.yaml(original)
        let (reread, diagnostics) = PipelineParser().parse(written, file: "written.yml")
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        #expect(positionless(try #require(reread)) == positionless(original))
        // And the written form is stable.
        #expect(try PipelineWriter.yaml(try #require(reread)) == written)
    }
}
