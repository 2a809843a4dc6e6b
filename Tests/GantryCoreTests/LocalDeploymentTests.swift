import GantryCore
import Testing

@Suite struct LocalDeploymentTests {
    func release(_ version: String, _ ports: [Int]) -> LocalDeployment.Release {
        LocalDeployment.Release(version: version, instances: ports.map { LocalDeployment.Instance(port: $0, pid: Int32($0)) })
    }

    @Test func promotingKeepsTheServingReleaseForItsWindowAndRetiresTheOneBefore() {
        var state = LocalDeployment(service: "api", listen: "127.0.0.1:8300")
        state.pending = release("v1", [9001])
        #expect(state.promotePending(keepUntilMs: 100) == nil)
        #expect(state.active?.version == "v1" && state.previous == nil && state.history == ["v1"])
        state.pending = release("v2", [9002])
        #expect(state.promotePending(keepUntilMs: 200) == nil)
        #expect(state.previous == LocalDeployment.Release(version: "v1", instances: [.init(port: 9001, pid: 9001)], keepUntilMs: 200))
        state.pending = release("v3", [9003])
        #expect(state.promotePending(keepUntilMs: 300)?.version == "v1", "the release before the previous one is retired")
        #expect(state.history == ["v1", "v2", "v3"] && state.rollbackVersion == "v2")
        #expect(state.expired(nowMs: 299) == nil && state.expired(nowMs: 300)?.version == "v2")
    }

    @Test func anInterruptedDeployIsFinishedOnlyWhenNginxAlreadyServesIt() {
        var state = LocalDeployment(service: "api", listen: "127.0.0.1:8300")
        #expect(state.recovery(upstreamPorts: [9001]) == .clean)
        state.active = release("v1", [9001, 9002])
        state.pending = release("v2", [9003, 9004])
        #expect(state.recovery(upstreamPorts: [9004, 9003]) == .finishSwitch)
        #expect(state.recovery(upstreamPorts: [9001, 9002]) == .discardPending)
        #expect(state.recovery(upstreamPorts: []) == .discardPending)
        #expect(state.recovery(upstreamPorts: [9003]) == .discardPending, "half of it serving is not a finished switch")
    }

    @Test func recipesAreKeptForTheRecentVersionsOnly() {
        var state = LocalDeployment(service: "api", listen: "127.0.0.1:8300")
        for n in 1...12 {
            state.history.append("v\(n)")
            state.remember("v\(n)", .init(command: "exec ./api-\(n)", workdir: nil, environment: ["N": "\(n)"]), keep: 3)
        }
        #expect(state.recipes?.keys.sorted() == ["v10", "v11", "v12"])
        #expect(state.recipes?["v11"]?.command == "exec ./api-11")
    }

    @Test func theServiceFileNamesItsPortsAndRelease() {
        let text = NginxConfig.service("billing-api", listen: "127.0.0.1:8301", ports: [41001, 41002], release: "v2; rm -rf")
        #expect(NginxConfig.ports(inServiceConfig: text) == [41001, 41002])
        #expect(text.contains("upstream gantry_billing_api {"))
        #expect(text.contains("listen 127.0.0.1:8301;"))
        #expect(text.contains(#"add_header X-Gantry-Release "v2rm-rf" always;"#), "only safe characters reach the configuration")
        #expect(NginxConfig.ports(inServiceConfig: "server {}") == [])
        #expect(NginxConfig.main(prefix: "/srv/g/nginx").contains("include /srv/g/nginx/services/*.conf;"))
    }
}
