import GantryCore
import Testing

@Suite struct PathGlobTests {
    @Test(arguments: [
        ("services/api/**", "services/api/src/main.ts", true),
        ("services/api/**", "services/api", false),
        ("services/api/**", "services/apix/main.ts", false),
        ("**/*.go", "main.go", true),
        ("**/*.go", "cmd/tool/main.go", true),
        ("*.md", "README.md", true),
        ("*.md", "docs/README.md", false),
        ("docs/*.md", "docs/a.md", true),
        ("docs/?.md", "docs/a.md", true),
        ("docs/?.md", "docs/ab.md", false),
        ("package.json", "package.json", true),
        ("package.json", "web/package.json", false),
        ("a/**/b", "a/b", true),
        ("a/**/b", "a/x/y/b", true),
    ])
    func matchesLikeCISystems(pattern: String, path: String, expected: Bool) {
        #expect(PathGlob.matches(pattern, path) == expected)
    }
}

@Suite struct PipelinePlanTests {
    let yaml = """
        pipeline: p
        environment: staging
        params:
          canary: { values: ["yes", "no"], default: "no" }
        steps:
          - { id: build-api, kind: build, when: { paths: ["services/api/**"] }, with: { run: make api } }
          - { id: build-web, kind: build, when: { paths: ["web/**"] }, with: { run: make web } }
          - { id: test, kind: build, needs: [build-api, build-web], with: { run: make test } }
          - { id: canary, kind: deploy, needs: [test], if: "${{ run.params.canary }} == 'yes'", with: { service: api-canary, version: v2, run: ./api, listen: "127.0.0.1:8301" } }
          - { id: deploy, kind: deploy, needs: [test], with: { service: api, version: v2, run: ./api, listen: "127.0.0.1:8300" } }
          - { id: smoke, kind: smoke-test, needs: [deploy, canary], with: { checks: [{ url: "http://127.0.0.1:8300/healthz" }] } }
        finally:
          - { id: notify, kind: notify, with: { channel: slack, webhook_url: "https://hooks.slack.example/T0/B0/x" } }
        """

    func plan(changed: [String]?, params: [String: String] = [:]) throws -> PipelinePlan {
        let definition = try #require(PipelineParser().parse(yaml, file: "p.yml").definition)
        return PipelinePlan.make(definition, changedFiles: changed, params: params, ref: nil, environment: nil)
    }

    @Test func stepsComeInDependencyLevels() throws {
        let plan = try plan(changed: nil, params: ["canary": "yes"])
        #expect(plan.levels.map { $0.map(\.id) } == [["build-api", "build-web"], ["test"], ["canary", "deploy"], ["smoke"]])
        #expect(plan.levels.joined().allSatisfy { $0.skipReason == nil })
        #expect(plan.finally.map(\.id) == ["notify"])
    }

    @Test func pathFiltersSkipButDependentsStillRun() throws {
        let plan = try plan(changed: ["services/api/handler.go"])
        let steps = Dictionary(plan.levels.joined().map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(steps["build-api"]?.skipReason == nil)
        #expect(steps["build-web"]?.skipReason == "no changed file matches when.paths web/**")
        #expect(steps["test"]?.skipReason == nil)
    }

    @Test func conditionsOnParametersAreDecided() throws {
        let no = try plan(changed: nil, params: ["canary": "no"])
        #expect(no.levels[2].first { $0.id == "canary" }?.skipReason == "if: ${{ run.params.canary }} == 'yes' is false")
        let yes = try plan(changed: nil, params: ["canary": "yes"])
        #expect(yes.levels[2].first { $0.id == "canary" }?.skipReason == nil)
    }
}
