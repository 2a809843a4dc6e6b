import Foundation
import GantryCore
import Testing

/// The environment's policy against the pipeline file: every gate, with the policy absent,
/// present, and stricter in the file.
@Suite struct EnvironmentRulesTests {
    func pipeline(_ yaml: String) throws -> PipelineDefinition {
        let (definition, diagnostics) = PipelineParser().parse(yaml, file: "p.yml")
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        return try #require(definition)
    }

    func policy(_ yaml: String) throws -> EnvironmentPolicy {
        let (policy, diagnostics) = EnvironmentPolicyParser().parse(yaml, file: "env.yml")
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        return try #require(policy)
    }

    func request(ref: String? = "main", confirm: String? = nil, submitter: String = "ci") -> EnvironmentRules.Request {
        .init(environment: "production", ref: ref, confirm: confirm, submitter: submitter)
    }

    func effective(_ definition: PipelineDefinition, _ policy: EnvironmentPolicy?, _ request: EnvironmentRules.Request) throws -> EnvironmentRules.Effective {
        switch EnvironmentRules.evaluate(definition, policy: policy, request: request) {
        case .success(let effective): return effective
        case .failure(let refusal):
            Issue.record("refused: \(refusal)")
            throw refusal
        }
    }

    func refusal(_ definition: PipelineDefinition, _ policy: EnvironmentPolicy?, _ request: EnvironmentRules.Request) -> String? {
        if case .failure(let refusal) = EnvironmentRules.evaluate(definition, policy: policy, request: request) { return refusal.reason }
        return nil
    }

    static let production = """
        environment: production
        protection:
          confirm: "DEPLOY TO PRODUCTION"
          promote_from: staging
          approvals: { required: 1, approvers: [alice, release], distinct_from_submitter: true, timeout: 4h }
          refs: [main, "release/*"]
          pipelines: [production]
        groups: { release: [bob, carol] }
        secrets: [SLACK_WEBHOOK, PAGERDUTY_ROUTING_KEY]
        inherit_env: [AWS_REGION]
        pool: production
        concurrency: { group: production }
        targets: { local: { listen: ["127.0.0.1:8300", "127.0.0.1:8301"] }, s3: ["s3://gantry-backups/production/"] }
        """

    /// A submitter's pipeline with no approval, no confirm and no group: the attack of the issue.
    static let bare = """
        pipeline: production
        environment: production
        steps:
          - { id: build, kind: build, with: { run: "make" } }
          - { id: deploy, kind: deploy, needs: [build], with: { target: local, service: api, version: v1, run: ./api, listen: "127.0.0.1:8300" } }
        on_failure:
          - { id: rollback, kind: deploy, with: { target: local, action: rollback, service: api } }
          - { id: page, kind: notify, with: { channel: slack, webhook_url: "${{ secrets.SLACK_WEBHOOK }}" } }
        finally:
          - { id: announce, kind: notify, with: { channel: slack, webhook_url: "${{ secrets.SLACK_WEBHOOK }}" } }
          - { id: cleanup, kind: build, with: { run: "true" } }
        """

    // MARK: Without a policy

    @Test func withoutAPolicyTheFileDecidesAsBefore() throws {
        let definition = try pipeline(Self.bare)
        let result = try effective(definition, nil, request(ref: nil))
        #expect(result.definition == definition)
        #expect(result.gate == nil)
        #expect(result.concurrencyGroup == "production")
        #expect(result.pool == nil)
        #expect(result.promoteFrom.isEmpty)
    }

    @Test func withoutAPolicyTheFilesConfirmStillApplies() throws {
        let definition = try pipeline(Self.bare.replacingOccurrences(of: "environment: production\n", with: "environment: production\ngates: { confirm: YES }\n"))
        #expect(refusal(definition, nil, request()) == "gate confirm: pipeline production needs --confirm \"YES\"")
        #expect(refusal(definition, nil, request(confirm: "no")) == "gate confirm: the confirmation text does not match; type exactly \"YES\"")
        _ = try effective(definition, nil, request(confirm: "YES"))
    }

    @Test func workerCredentialsNeverReachAStepWithoutAPolicyThatListsThem() throws {
        let definition = try pipeline("""
            pipeline: p
            steps: [{ id: b, kind: build, with: { run: env, inherit_env: [HOME, GANTRY_DATABASE_URL] } }]
            """)
        #expect(refusal(definition, nil, request())?.contains("with.inherit_env GANTRY_DATABASE_URL") == true)
        let aws = try pipeline("""
            pipeline: p
            steps: [{ id: b, kind: build, with: { run: env, inherit_env: [AWS_REGION] } }]
            """)
        #expect(refusal(aws, nil, request()) != nil)
        var listed = try policy(Self.production)
        listed.pipelines = nil
        _ = try effective(aws, listed, request(confirm: "DEPLOY TO PRODUCTION"))
        listed.inheritEnv = []
        #expect(refusal(aws, listed, request(confirm: "DEPLOY TO PRODUCTION"))?.contains("policy line 10, inherit_env") == true)
    }

    // MARK: The approval gate

    @Test func aPipelineWithoutApprovalGetsTheEnvironmentsGateBeforeEveryStep() throws {
        let result = try effective(try pipeline(Self.bare), try policy(Self.production), request(confirm: "DEPLOY TO PRODUCTION"))
        #expect(result.gate == "approval")
        let gate = try #require(result.definition.steps.first)
        #expect(gate.id == "approval" && gate.kind == "approval")
        #expect(gate.inputs["required"] == .number(1))
        #expect(gate.inputs["approvers"] == .array(["alice", "bob", "carol"].map(JSONValue.string)))
        #expect(gate.inputs["distinct_from_submitter"] == .bool(true))
        #expect(gate.inputs["timeout"] == .string("4h"))
        #expect(result.definition.steps[1].needs == ["approval"])
        #expect(result.definition.steps[2].needs == ["build"])
        // A rollback and a command in finally wait for the gate; notifications do not.
        #expect(result.definition.onFailure.map(\.needs) == [["approval"], []])
        #expect(result.definition.finally.map(\.needs) == [[], ["approval"]])
        #expect(result.concurrencyGroup == "production")
        #expect(result.pool == "production")
        #expect(result.promoteFrom == ["staging"])
    }

    @Test func thePipelinesOwnGateIsRaisedToThePolicy() throws {
        let definition = try pipeline("""
            pipeline: production
            environment: production
            steps:
              - { id: ok, kind: approval, with: { required: 2, approvers: [alice, bob, mallory], timeout: 24h } }
              - { id: deploy, kind: noop, needs: [ok] }
            """)
        let result = try effective(definition, try policy(Self.production), request(confirm: "DEPLOY TO PRODUCTION"))
        #expect(result.gate == "ok")
        let gate = result.definition.steps[0]
        #expect(gate.inputs["required"] == .number(2))
        // Only those both lists name: mallory is not one of the environment's approvers.
        #expect(gate.inputs["approvers"] == .array(["alice", "bob"].map(JSONValue.string)))
        #expect(gate.inputs["distinct_from_submitter"] == .bool(true))
        #expect(gate.inputs["timeout"] == .string("4h"))
        #expect(result.definition.steps.count == 2)
    }

    @Test func aGateTheFileMakesStricterStaysStricter() throws {
        let definition = try pipeline("""
            pipeline: production
            environment: production
            steps:
              - { id: ok, kind: approval, with: { required: 1, approvers: [alice], timeout: 30m } }
              - { id: deploy, kind: noop, needs: [ok] }
            """)
        let result = try effective(definition, try policy(Self.production), request(confirm: "DEPLOY TO PRODUCTION"))
        #expect(result.definition.steps[0].inputs["approvers"] == .array([.string("alice")]))
        #expect(result.definition.steps[0].inputs["timeout"] == .string("30m"))
    }

    @Test func anApprovalStepThatLetsAStepStartFirstIsRefused() throws {
        let definition = try pipeline("""
            pipeline: production
            environment: production
            steps:
              - { id: verify, kind: scan, with: { secrets: { path: . } } }
              - { id: approval, kind: approval, needs: [verify], with: { timeout: 1h } }
              - { id: deploy, kind: noop, needs: [approval] }
            """)
        let reason = try #require(refusal(definition, try policy(Self.production), request(confirm: "DEPLOY TO PRODUCTION")))
        #expect(reason.hasPrefix("step 'verify' (line 4) would start before approval step 'approval'"))
        #expect(reason.contains("policy line 5, protection.approvals"))
    }

    @Test func theGateCannotBeSkippedByAConditionOrAPathFilter() throws {
        for filter in ["if: \"${{ run.ref }} == 'nope'\"", "when: { paths: [nothing/**] }"] {
            let definition = try pipeline("""
                pipeline: production
                environment: production
                steps:
                  - { id: ok, kind: approval, \(filter), with: { timeout: 1h } }
                  - { id: deploy, kind: noop, needs: [ok] }
                """)
            let reason = try #require(refusal(definition, try policy(Self.production), request(confirm: "DEPLOY TO PRODUCTION")))
            #expect(reason.hasPrefix("approval step 'ok' (line 4) is the environment's gate and cannot have if: or when:"), "\(reason)")
        }
        let clash = try pipeline(Self.bare.replacingOccurrences(of: "id: page", with: "id: approval"))
        #expect(refusal(clash, try policy(Self.production), request(confirm: "DEPLOY TO PRODUCTION"))?.contains("is named 'approval'") == true)
    }

    @Test func backupsGoWhereTheEnvironmentSaysNotWhereTheFileSays() throws {
        let definition = try pipeline("""
            pipeline: production
            environment: production
            steps: [{ id: b, kind: backup, with: { source: { paths: [x] }, to: "s3://gantry-backups/production/x/", endpoint: "https://attacker.example" } }]
            """)
        #expect(refusal(definition, try policy(Self.production), request(confirm: "DEPLOY TO PRODUCTION"))?.contains("with.endpoint: environment production") == true)
    }

    @Test func approversNoListSharesAreRefused() throws {
        let definition = try pipeline("""
            pipeline: production
            environment: production
            steps:
              - { id: ok, kind: approval, with: { approvers: [mallory], timeout: 1h } }
              - { id: deploy, kind: noop, needs: [ok] }
            """)
        let reason = try #require(refusal(definition, try policy(Self.production), request(confirm: "DEPLOY TO PRODUCTION")))
        #expect(reason.contains("1 approval(s) required but only 0 approver(s)"))
    }

    @Test func approverRuleChecksTheListAndTheSubmitter() {
        let rule = ApprovalRule(inputs: ["approvers": .array([.string("alice"), .string("bob")]), "distinct_from_submitter": .bool(true)])
        #expect(rule.refusal(approver: "alice", submitter: "ci", step: "approval") == nil)
        #expect(rule.refusal(approver: "mallory", submitter: "ci", step: "approval") == "mallory is not an approver of step approval; its approvers are alice, bob")
        #expect(rule.refusal(approver: "bob", submitter: "bob", step: "approval")?.contains("needs an approver other than the submitter") == true)
        let open = ApprovalRule(inputs: [:])
        #expect(open.refusal(approver: "anyone", submitter: "anyone", step: "s") == nil)
    }

    // MARK: Protection rules

    @Test func refsPipelinesAndConfirmComeFromTheEnvironment() throws {
        let policy = try policy(Self.production)
        let definition = try pipeline(Self.bare)
        #expect(refusal(definition, policy, request(ref: nil, confirm: "DEPLOY TO PRODUCTION"))
                == "environment production (policy line 6, protection.refs): give the ref being deployed (--ref); it must match main, release/*")
        #expect(refusal(definition, policy, request(ref: "feature/x", confirm: "DEPLOY TO PRODUCTION"))?.contains("ref feature/x may not deploy here") == true)
        _ = try effective(definition, policy, request(ref: "release/2026.12", confirm: "DEPLOY TO PRODUCTION"))
        #expect(refusal(definition, policy, request())?.hasPrefix("gate confirm: pipeline production needs --confirm") == true)
        let other = try pipeline(Self.bare.replacingOccurrences(of: "pipeline: production", with: "pipeline: hotfix"))
        #expect(refusal(other, policy, request(confirm: "DEPLOY TO PRODUCTION"))
                == "environment production (policy line 7, protection.pipelines): pipeline hotfix may not run here; allowed: production")
        let ownConfirm = try pipeline(Self.bare.replacingOccurrences(of: "environment: production\n", with: "environment: production\ngates: { confirm: yes please }\n"))
        #expect(refusal(ownConfirm, policy, request(confirm: "yes please"))?.contains("differs from environment production") == true)
    }

    @Test func promotionSourcesAddUp() throws {
        let definition = try pipeline(Self.bare.replacingOccurrences(of: "environment: production\n", with: "environment: production\ngates: { promote_from: qa }\n"))
        let result = try effective(definition, try policy(Self.production), request(confirm: "DEPLOY TO PRODUCTION"))
        #expect(result.promoteFrom == ["staging", "qa"])
    }

    @Test func onlyTheEnvironmentsSecretsAndTargets() throws {
        let policy = try policy(Self.production)
        let confirm = request(confirm: "DEPLOY TO PRODUCTION")
        let secret = try pipeline(Self.bare.replacingOccurrences(of: "secrets.SLACK_WEBHOOK }}\" } }\n  - { id: cleanup", with: "secrets.STAGING_DB }}\" } }\n  - { id: cleanup"))
        #expect(refusal(secret, policy, confirm) == "step 'announce': secret STAGING_DB is not one of environment production (policy line 9, secrets)'s: SLACK_WEBHOOK, PAGERDUTY_ROUTING_KEY")
        let listen = try pipeline(Self.bare.replacingOccurrences(of: "127.0.0.1:8300", with: "127.0.0.1:9999"))
        #expect(refusal(listen, policy, confirm)?.hasPrefix("step 'deploy': with.listen 127.0.0.1:9999 is not one of") == true)
        let kubernetes = try pipeline(Self.bare.replacingOccurrences(of: "target: local, service: api, version: v1, run: ./api, listen: \"127.0.0.1:8300\"", with: "target: kubernetes, service: api, image: x, context: prod"))
        #expect(refusal(kubernetes, policy, confirm)?.contains("allows no kubernetes deployments") == true)
        for to in ["s3://gantry-backups/staging/x/", "s3://gantry-backups/production/../staging/", "s3://${{ run.params.bucket }}/"] {
            let backup = try pipeline("""
                pipeline: production
                environment: production
                params: { bucket: {} }
                steps: [{ id: b, kind: backup, with: { source: { paths: [x] }, to: "\(to)" } }]
                """)
            #expect(refusal(backup, policy, confirm)?.contains("with.to must start with one of") == true, "\(to)")
        }
        let fine = try pipeline("""
            pipeline: production
            environment: production
            steps: [{ id: b, kind: backup, with: { source: { paths: [x] }, to: "s3://gantry-backups/production/${{ run.id }}/" } }]
            """)
        _ = try effective(fine, policy, confirm)
    }

    @Test func aFileCanOnlyShareAGroupWithinItsEnvironment() throws {
        let definition = try pipeline("""
            pipeline: sneaky
            environment: staging
            concurrency: { group: production, on_busy: cancel-pending }
            steps: [{ id: a, kind: noop }]
            """)
        let result = try effective(definition, nil, .init(environment: "staging", ref: nil, confirm: nil, submitter: "ci"))
        #expect(result.concurrencyGroup == "staging/production")
        var staging = EnvironmentPolicy(name: "staging")
        staging.concurrencyGroup = "shared"
        #expect(try effective(definition, staging, .init(environment: "staging", ref: nil, confirm: nil, submitter: "ci")).concurrencyGroup == "shared")
    }

    // MARK: The run machine keeps the gate

    @Test func aRefusedGateRunsOnlyTheNotifications() throws {
        let result = try effective(try pipeline(Self.bare), try policy(Self.production), request(confirm: "DEPLOY TO PRODUCTION"))
        var random = SeededRandom(seed: 1)
        var state = RunState(result.definition)
        var commands: [RunCommand] = []
        for event in [RunEvent.submitted(skips: [:]), .approvalRejected(step: "approval", by: "alice")] {
            let next = RunMachine.apply(state, event, nowMs: 1_000, random: &random)
            state = next.state
            commands += next.commands
        }
        let enqueued = commands.compactMap { if case .enqueue(let step, _) = $0 { step } else { nil } }
        #expect(enqueued == ["page"])
        // The finally notification runs after it; the command in finally never does.
        let after = RunMachine.apply(state, .attemptFinished(step: "page", attempt: 1, status: .succeeded, exitCode: 0, retryable: false, error: nil), nowMs: 2_000, random: &random)
        let next = after.commands.compactMap { if case .enqueue(let step, _) = $0 { step } else { nil } }
        #expect(next == ["announce"])
        let done = RunMachine.apply(after.state, .attemptFinished(step: "announce", attempt: 1, status: .succeeded, exitCode: 0, retryable: false, error: nil), nowMs: 3_000, random: &random)
        #expect(done.state.steps["cleanup"]?.lifecycle == .skipped("a step it needs did not succeed", byFilter: false))
        #expect(done.commands.last == .finishRun(.failed))
    }

    @Test func aRetryAsksTheApproversAgain() throws {
        let result = try effective(try pipeline(Self.bare), try policy(Self.production), request(confirm: "DEPLOY TO PRODUCTION"))
        var random = SeededRandom(seed: 1)
        var state = RunState(result.definition)
        let finished = { (step: String, status: AttemptStatus) in
            RunEvent.attemptFinished(step: step, attempt: 1, status: status, exitCode: 0, retryable: false, error: nil)
        }
        for event in [RunEvent.submitted(skips: [:]), .approvalGranted(step: "approval", by: "alice"), finished("build", .succeeded),
                      finished("deploy", .failed), finished("rollback", .succeeded), finished("page", .succeeded),
                      finished("announce", .succeeded), finished("cleanup", .succeeded)] {
            state = RunMachine.apply(state, event, nowMs: 1_000, random: &random).state
        }
        #expect(state.phase == .done && state.outcome == .failed)
        let retried = RunMachine.apply(state, .retryFailed(step: nil), nowMs: 5_000, random: &random)
        #expect(retried.commands.contains { if case .awaitApproval(step: "approval", _, _) = $0 { true } else { false } })
        #expect(!retried.commands.contains { if case .enqueue = $0 { true } else { false } })
        #expect(retried.state.steps["build"]?.lifecycle == .succeeded)
        let approved = RunMachine.apply(retried.state, .approvalGranted(step: "approval", by: "bob"), nowMs: 6_000, random: &random)
        #expect(approved.commands == [.enqueue(step: "deploy", attempt: 2)])
    }
}

/// The policy file: every problem with its place, and the names that reach keys and configuration.
@Suite struct EnvironmentPolicyParserTests {
    @Test func theIssuesExampleReads() throws {
        let (policy, diagnostics) = EnvironmentPolicyParser().parse(EnvironmentRulesTests.production, file: "production.yml")
        #expect(diagnostics.isEmpty)
        let read = try #require(policy)
        #expect(read.name == "production")
        #expect(read.approvals == .init(required: 1, approvers: ["alice", "release"], distinctFromSubmitter: true, timeout: .seconds(14_400)))
        #expect(read.expand(["alice", "release"]) == ["alice", "bob", "carol"])
        #expect(read.targets?.localListen == ["127.0.0.1:8300", "127.0.0.1:8301"])
        #expect(read.targets?.kubernetes == nil)
        #expect(read.lines["protection.refs"] == 6)
    }

    @Test func everyProblemHasItsPlace() {
        let text = """
            environment: prod uction
            protection:
              aprovals: { required: 1 }
              approvals: { required: 0 }
            pool: "a;b"
            targets: { local: { listen: ["127.0.0.1:8300; location /s { alias /; }"] }, s3: ["s3://bucket"] }
            secrets: [lower]
            """
        let (policy, diagnostics) = EnvironmentPolicyParser().parse(text, file: "env.yml")
        #expect(policy == nil)
        let lines = diagnostics.map(\.description)
        #expect(lines.contains("env.yml:1:14: environment 'prod uction' is not a name: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"))
        #expect(lines.contains { $0.hasPrefix("env.yml:3:3: unknown key 'aprovals' in protection; did you mean 'approvals'?") })
        #expect(lines.contains { $0.hasPrefix("env.yml:4:14: protection.approvals has no timeout") })
        #expect(lines.contains("env.yml:4:26: protection.approvals.required must be a whole number from 1 to 20"))
        #expect(lines.contains { $0.hasPrefix("env.yml:5:7: pool 'a;b' is not a name") })
        #expect(lines.contains { $0.contains("targets.local.listen: '127.0.0.1:8300; location") && $0.contains("is not host:port") })
        #expect(lines.contains { $0.contains("targets.s3: 's3://bucket' must be s3://bucket/prefix/") })
        #expect(lines.contains { $0.contains("secrets: 'lower' is not a secret name") })
    }

    @Test(arguments: [
        ("127.0.0.1:8300", true), ("localhost:80", true), ("[::1]:8080", true), ("api.internal:443", true),
        ("127.0.0.1:8300; location /s { alias /; autoindex on; } #", false), ("127.0.0.1", false), ("127.0.0.1:0", false),
        ("127.0.0.1:70000", false), (":80", false), ("a b:80", false), ("127.0.0.1:+80", false), ("[::1;]:80", false),
    ])
    func listenIsHostAndPort(text: String, valid: Bool) {
        #expect(ListenAddress.isValid(text) == valid)
    }

    @Test func deployNamesAndAddressesAreCheckedAtValidate() {
        let (_, diagnostics) = PipelineParser().parse("""
            pipeline: p
            steps:
              - { id: d, kind: deploy, with: { service: api, version: v1, run: ./api, listen: "127.0.0.1:8300; location /s { alias /; } #" } }
              - { id: n, kind: deploy, with: { service: "api;rm", version: v1, run: ./api, listen: "127.0.0.1:8300" } }
              - { id: k, kind: deploy, with: { target: kubernetes, service: api, image: "registry/api:v1", namespace: "--kubeconfig=/x" } }
              - { id: e, kind: deploy, with: { service: api, version: v1, run: ./api, listen: "${{ run.params.listen }}" } }
            params: { listen: {} }
            """, file: "p.yml")
        let lines = diagnostics.map(\.description)
        #expect(lines == [
            "p.yml:3:83: step 'd': with.listen '127.0.0.1:8300; location /s { alias /; } #': give the address nginx serves the service on as host:port, e.g. 127.0.0.1:8300",
            "p.yml:4:45: step 'n': with.service 'api;rm': use \(SafeName.rule)",
            "p.yml:5:107: step 'k': with.namespace '--kubeconfig=/x': use \(SafeName.rule)",
        ], "\(lines)")
    }
}

/// Hostile YAML is refused in milliseconds, before it costs memory or stack.
@Suite struct BoundedYAMLTests {
    func problem(_ text: String) -> String? {
        PipelineParser().parse(text, file: "p.yml").diagnostics.first?.description
    }

    @Test func oneLargeStringRepeatedByAliasesIsRefused() {
        let big = String(repeating: "x", count: 200_000)
        let text = "pipeline: p\nsteps: [{ id: a, kind: noop, with: { s: &s \"\(big)\", list: [" + Array(repeating: "*s", count: 100).joined(separator: ", ") + "] } }]\n"
        #expect(problem(text)?.contains("more than 4194304 bytes of text") == true)
    }

    /// Each way past a naive scan that the security review found: the composer must never see them.
    @Test(arguments: [
        "a: &x " + String(repeating: "[", count: 100_000),
        "--- !!seq " + String(repeating: "[", count: 100_000),
        "[a'b, " + String(repeating: "[", count: 100_000),
        "#\r" + String(repeating: "- ", count: 100_000) + "x",
        "#\u{2028}" + String(repeating: "[", count: 100_000),
        "#\u{85}" + String(repeating: "[", count: 100_000),
        "a: !t |\r\n  'x\nb: " + String(repeating: "[", count: 100_000),
        "a: |4\n  b: " + String(repeating: "[", count: 100_000),
        "a:\t" + String(repeating: "[", count: 100_000),
        "{\"a\":" + String(repeating: "[", count: 100_000),
        "? " + String(repeating: "[", count: 100_000),
    ])
    func scanBypassesAreCaught(text: String) {
        #expect(NestingProbe.refuses(text), "\(text.prefix(30).debugDescription)")
    }

    @Test func aliasBombIsRefusedQuickly() {
        var text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...9 {
            let refs = Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ")
            text += "a\(level): &a\(level) [\(refs)]\n"
        }
        text += "pipeline: p\nsteps: [{ id: a, kind: noop, with: { bomb: *a9 } }]\n"
        #expect(text.utf8.count < 1_200)
        let start = ContinuousClock.now
        let message = problem(text)
        #expect(ContinuousClock.now - start < .seconds(1))
        #expect(message?.contains("more than 100000 values (aliases counted each time they are used)") == true, "\(message ?? "")")
    }

    @Test func deepNestingIsRefusedBeforeComposing() {
        let flow = String(repeating: "[", count: 200_000)
        #expect(problem("pipeline: \(flow)")?.hasPrefix("p.yml:1:") == true)
        #expect(problem("pipeline: \(flow)")?.contains("nesting deeper than 64 levels") == true)
        var block = ""
        for depth in 0..<300 { block += String(repeating: " ", count: depth) + "k\(depth):\n" }
        #expect(problem(block)?.contains("nesting deeper than 64 levels") == true)
        let dashes = "steps:\n" + String(repeating: "- ", count: 5_000) + "x\n"
        #expect(problem(dashes)?.contains("nesting deeper than 64 levels") == true)
        // Between the scan's bound and the exact limit: composed, then refused by the walk.
        let moderate = "pipeline: " + String(repeating: "[", count: 60) + String(repeating: "]", count: 60) + "\nsteps: [{ id: a, kind: noop, with: { x: " + String(repeating: "{a: ", count: 70) + "1" + String(repeating: "}", count: 70) + " } }]\n"
        #expect(problem(moderate)?.contains("nesting deeper than 64 levels") == true)
    }

    @Test func bracesInScriptsAndStringsAreNotNesting() {
        let braces = String(repeating: "{ [", count: 100)
        let text = """
            pipeline: p
            steps:
              - id: a
                kind: build
                with:
                  run: |
                    \(braces)
                    echo "${{ run.sha }}"
                  env:
                    NOTE: "\(braces)"
                    OTHER: '\(braces)' # \(braces)
                    PLAIN: a\(braces)
            """
        #expect(problem(text) == nil)
    }

    @Test func aLargeFileIsRefusedBySize() {
        let text = "pipeline: p\n# " + String(repeating: "x", count: 1 << 20) + "\nsteps: [{ id: a, kind: noop }]\n"
        #expect(problem(text)?.hasPrefix("p.yml:1:1: the file is") == true)
    }

    @Test func manyHostilePatternsAgainstManyFilesStayCheap() throws {
        // 64 distinct patterns of 16 stars, against a megabyte of changed files: ~2e9 steps unbounded.
        let steps = (0..<64).map { index in "  - { id: s\(index), kind: noop, when: { paths: [\"" + String(repeating: "*a", count: 16) + "b\(index)\"] } }" }
        let definition = try #require(PipelineParser().parse("pipeline: p\nsteps:\n" + steps.joined(separator: "\n"), file: "p.yml").definition)
        let files = (0..<1_000).map { _ in String(repeating: "a", count: 1_000) }
        // The budget stops it (a smaller one than a submit's, so that a debug build on a loaded
        // machine finishes at once), and what it could not decide runs rather than being skipped.
        let plan = PipelinePlan.make(definition, changedFiles: files, params: [:], ref: nil, environment: nil, globBudget: 1_000_000)
        let skipped = plan.levels.joined().filter { $0.skipReason != nil }.count
        #expect(skipped < 64)
        var budget = 1_000
        #expect(PathGlob.Compiled("*a*a*a*ab").matches(String(repeating: "a", count: 1_000), budget: &budget) == nil)
        #expect(PathGlob.Compiled("src/**/*.go").matches("src/a/b.go", budget: &budget) == nil)
        var plenty = 1_000_000
        #expect(PathGlob.Compiled("src/**/*.go").matches("src/a/b.go", budget: &plenty) == true)
    }

    @Test func globsStayLinear() {
        let pattern = String(repeating: "*a", count: 40) + "b"
        let path = String(repeating: "a", count: 4_000)
        let start = ContinuousClock.now
        #expect(!PathGlob.matches(pattern, path))
        #expect(!PathGlob.matches(String(repeating: "**a", count: 40) + "b", path))
        #expect(ContinuousClock.now - start < .seconds(1))
        #expect(!PathGlob.matches("**/b", "xb"))
        #expect(PathGlob.matches("**/b", "x/b"))
        #expect(PathGlob.matches("release/*", "release/2026.12"))
    }
}

/// Whether the parser refuses a text before composing it (a crash would end the test run).
enum NestingProbe {
    static func refuses(_ text: String) -> Bool {
        let problem = PipelineParser().parse(text, file: "p.yml").diagnostics.first?.message ?? ""
        return problem.contains("nesting deeper than") || problem.contains("not valid YAML")
    }
}

/// Pools: which queue a step goes to, which secrets a pool's workers resolve, and what other
/// environments keep to themselves.
@Suite struct PoolTests {
    static func policy(_ name: String, pool: String?, secrets: [String]?, listen: [String]? = nil) -> EnvironmentPolicy {
        var policy = EnvironmentPolicy(name: name, secrets: secrets, pool: pool)
        if let listen { policy.targets = .init(localListen: listen) }
        return policy
    }

    @Test func queuesPerPool() {
        #expect(Identifiers.queueKind("build", pool: nil) == "build")
        #expect(Identifiers.queueKind("build", pool: "default") == "build")
        #expect(Identifiers.queueKind("build", pool: "production") == "build@production")
        #expect(Identifiers.baseKind("build@production") == "build")
        #expect(Identifiers.isValidQueueKind("build@production"))
        #expect(!Identifiers.isValidQueueKind("build@pro duction") && !Identifiers.isValidQueueKind("@x") && !Identifiers.isValidQueueKind("build@"))
    }

    @Test func aPoolResolvesOnlyItsEnvironmentsSecrets() {
        var productionPolicy = Self.policy("production", pool: "production", secrets: ["SLACK"])
        productionPolicy.exclusiveSecrets = ["PROD_DB"]
        var stagingPolicy = Self.policy("staging", pool: "staging", secrets: ["SLACK"])
        stagingPolicy.exclusiveSecrets = ["STAGING_DB"]
        let policies = [productionPolicy, stagingPolicy, Self.policy("dev", pool: nil, secrets: nil)]
        let production = SecretScope.of(pool: "production", policies: policies)
        #expect(production.permits("PROD_DB") && production.permits("SLACK"))
        #expect(!production.permits("STAGING_DB") && !production.permits("ANYTHING"))
        let staging = SecretScope.of(pool: "staging", policies: policies)
        #expect(!staging.permits("PROD_DB") && staging.permits("STAGING_DB"))
        // The default pool serves environments without a policy: any name but the pools' own.
        let fallback = SecretScope.of(pool: nil, policies: policies)
        #expect(fallback.permits("ANYTHING") && !fallback.permits("PROD_DB") && !fallback.permits("STAGING_DB"))
        #expect(fallback.permits("SLACK"), "a shared secret (not exclusive) may be held by any pool")
        #expect(!SecretScope.of(pool: "nobody", policies: policies).permits("SLACK"))
        #expect(SecretScope.of(pool: nil, policies: []) == .unrestricted)
    }

    @Test func aPoolPassesOnOnlyTheCloudVariablesItsPoliciesList() {
        var production = Self.policy("production", pool: "production", secrets: nil)
        production.inheritEnv = ["AWS_REGION", "AWS_PROFILE"]
        var staging = Self.policy("staging", pool: "staging", secrets: nil)
        staging.inheritEnv = ["AWS_ACCESS_KEY_ID"]
        let policies = [production, staging]
        let scope = SecretScope.of(pool: "production", policies: policies)
        #expect(scope.inheritable == ["AWS_REGION", "AWS_PROFILE"])
        #expect(scope.mayInherit("AWS_REGION") && scope.mayInherit("AWS_PROFILE") && scope.mayInherit("DOCKER_HOST"))
        #expect(!scope.mayInherit("AWS_ACCESS_KEY_ID"), "staging's listing does not reach production's pool")
        #expect(!scope.mayInherit("GANTRY_DATABASE_URL") && !scope.mayInherit("GANTRY_SECRET_X"))
        // No policy: no cloud variable passes, as at submit.
        #expect(!SecretScope.unrestricted.mayInherit("AWS_REGION"))
        #expect(!SecretScope.of(pool: nil, policies: policies).mayInherit("AWS_REGION"))
    }

    @Test func anotherEnvironmentsSecretsAndAddressesAreItsOwn() throws {
        var production = Self.policy("production", pool: "production", secrets: ["SLACK"], listen: ["127.0.0.1:8300"])
        production.exclusiveSecrets = ["PROD_DB"]
        let definition = try #require(PipelineParser().parse("""
            pipeline: p
            environment: staging
            steps:
              - { id: a, kind: build, with: { run: x, env: { DB: "${{ secrets.PROD_DB }}" } } }
            """, file: "p.yml").definition)
        let request = EnvironmentRules.Request(environment: "staging", ref: nil, confirm: nil, submitter: "ci")
        guard case .failure(let refusal) = EnvironmentRules.evaluate(definition, policy: nil, request: request, others: [production]) else {
            Issue.record("a staging run named production's secret")
            return
        }
        #expect(refusal.reason == "step 'a': secret PROD_DB belongs to environment production (its policy's exclusive_secrets); this environment's policy must list it there too")
        let deploy = try #require(PipelineParser().parse("""
            pipeline: p
            environment: staging
            steps: [{ id: d, kind: deploy, with: { service: api, version: v1, run: ./api, listen: "127.0.0.1:8300" } }]
            """, file: "p.yml").definition)
        #expect(throws: EnvironmentRules.Refusal.self) { try EnvironmentRules.evaluate(deploy, policy: nil, request: request, others: [production]).get() }
        // Computed places cannot slip past: where another environment reserves places of a sort,
        // they must be written out.
        for with in ["version: v1, run: ./api, listen: \"${{ run.params.addr }}\"", "target: kubernetes, image: x, context: \"${{ run.params.ctx }}\""] {
            let computed = try #require(PipelineParser().parse("""
                pipeline: p
                environment: staging
                params: { addr: {}, ctx: {} }
                steps: [{ id: d, kind: deploy, with: { service: api, \(with) } }]
                """, file: "p.yml").definition)
            var owner = production
            owner.targets?.kubernetes = [.init(context: "prod", namespace: nil)]
            #expect(throws: EnvironmentRules.Refusal.self) { try EnvironmentRules.evaluate(computed, policy: nil, request: request, others: [owner]).get() }
        }
        var bucketOwner = production
        bucketOwner.targets?.s3 = ["s3://backups/production/"]
        for (to, refused) in [("s3://backups/${{ run.params.where }}/", true), ("s3://backups/", true), ("s3://backups/production/x/", true),
                              ("s3://backups/staging/${{ run.id }}/", false), ("s3://other/", false)] {
            let backup = try #require(PipelineParser().parse("""
                pipeline: p
                environment: staging
                params: { where: {} }
                steps: [{ id: b, kind: backup, with: { source: { paths: [x] }, to: "\(to)" } }]
                """, file: "p.yml").definition)
            let result = EnvironmentRules.evaluate(backup, policy: nil, request: request, others: [bucketOwner])
            #expect((try? result.get()) == nil ? refused : !refused, "\(to)")
        }
        // Another spelling of a reserved port, a rollback that names no address, and an endpoint
        // that would turn any location into another environment's are refused too.
        for with in ["target: local, service: api, version: v1, run: ./api, listen: \"localhost:8300\"",
                     "target: local, service: api, version: v1, run: ./api, listen: \"127.0.0.1:08300\"",
                     "target: local, action: rollback, service: api"] {
            let definition = try #require(PipelineParser().parse("""
                pipeline: p
                environment: staging
                steps: [{ id: d, kind: deploy, with: { \(with) } }]
                """, file: "p.yml").definition)
            #expect(throws: EnvironmentRules.Refusal.self, "\(with)") { try EnvironmentRules.evaluate(definition, policy: nil, request: request, others: [production]).get() }
        }
        let endpoint = try #require(PipelineParser().parse("""
            pipeline: p
            environment: staging
            steps: [{ id: b, kind: backup, with: { source: { paths: [x] }, to: "s3://prod/x/", endpoint: "https://backups.s3.amazonaws.com" } }]
            """, file: "p.yml").definition)
        #expect(throws: EnvironmentRules.Refusal.self) { try EnvironmentRules.evaluate(endpoint, policy: nil, request: request, others: [bucketOwner]).get() }
        // Production's own runs may, of course.
        var own = request
        own.environment = "production"
        var open = production
        open.approvals = nil
        #expect(throws: Never.self) { try EnvironmentRules.evaluate(definition, policy: open, request: own, others: [production]).get() }
    }
}
