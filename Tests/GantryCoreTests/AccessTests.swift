import GantryCore
import Testing

/// Every role against every action, in and out of its environments.
@Suite struct AccessTests {
    /// (roles, environments) → the actions allowed in staging, in production, and on a run without an environment.
    static let table: [(roles: Set<Role>, envs: Set<String>, staging: Set<APIAction>, production: Set<APIAction>, none: Set<APIAction>)] = [
        ([.submitter], ["staging"], [.submit, .read, .cancel, .retry], [], []),
        ([.approver], ["production"], [], [.approve, .read], []),
        ([.submitter, .approver], ["staging", "production"], [.submit, .read, .cancel, .retry, .approve], [.submit, .read, .cancel, .retry, .approve], []),
        ([.submitter], ["*"], [.submit, .read, .cancel, .retry], [.submit, .read, .cancel, .retry], [.submit, .read, .cancel, .retry]),
        ([.operator], [], [.read, .cancel, .retry, .observe, .operate], [.read, .cancel, .retry, .observe, .operate], [.read, .cancel, .retry, .observe, .operate]),
        ([.auditor], [], [.read, .observe], [.read, .observe], [.read, .observe]),
        ([.admin], [], Set(APIAction.allCases), Set(APIAction.allCases), Set(APIAction.allCases)),
        ([], ["staging"], [], [], []),
    ]

    @Test(arguments: 0..<table.count)
    func rolesAllowExactlyTheirActions(row: Int) {
        let entry = Self.table[row]
        let grant = Grant(name: "t", roles: entry.roles, environments: entry.envs)
        for action in APIAction.allCases {
            for (environment, allowed) in [("staging", entry.staging), ("production", entry.production), (nil, entry.none)] as [(String?, Set<APIAction>)] {
                let decision = grant.decide(action, environment: environment)
                let ok = if case .success = decision { true } else { false }
                #expect(ok == allowed.contains(action), "roles \(entry.roles) envs \(entry.envs): \(action) in \(environment ?? "none")")
            }
        }
    }

    @Test func refusalsNameTheTokenAndWhatIsMissing() {
        let grant = Grant(name: "ci-staging", roles: [.submitter], environments: ["staging"])
        guard case .failure(let scope) = grant.decide(.submit, environment: "production"),
              case .failure(let role) = grant.decide(.approve, environment: "staging") else {
            Issue.record("expected refusals")
            return
        }
        #expect(scope.reason == "token ci-staging may not submit in production: it is scoped to staging")
        #expect(role.reason == "token ci-staging may not approve: it has roles submitter; approve needs approver or admin")
    }

    @Test func readableEnvironments() {
        #expect(Grant(name: "a", roles: [.submitter], environments: ["staging"]).readableEnvironments == ["staging"])
        #expect(Grant(name: "a", roles: [.auditor], environments: []).readableEnvironments == nil)
        #expect(Grant(name: "a", roles: [.approver], environments: ["*"]).readableEnvironments == nil)
        #expect(Grant(name: "a", roles: [], environments: ["staging"]).readableEnvironments == [])
    }
}
