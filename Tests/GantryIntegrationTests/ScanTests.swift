import Foundation
import GantryCore
import GantryTestSupport
import Testing

/// The scan kind run by a real worker process over a real workspace, real
/// report files (the fixtures of GantryCoreTests) and a real git repository.
@Suite struct ScanTests {
    // Built at run time so that the repository does not itself hold a credential-shaped string.
    static let awsKeyID = "AKIA" + "Q3EGRTLMXW7PZ2NB"
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../GantryCoreTests/Fixtures/scan").standardizedFileURL.path

    static func write(_ text: String, to path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// A workspace with a leaked key, an allow-listed test key, a binary file and a .git folder.
    static func workspace(_ root: String) throws {
        try write("LOG_LEVEL=info\naws_access_key_id = \(awsKeyID)\n", to: "\(root)/config/prod.env")
        try write("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n", to: "\(root)/test/fixtures/tls/key.pem")
        try write("export const answer = 42\n", to: "\(root)/src/app.js")
        try write("aws_access_key_id = \(awsKeyID)\n", to: "\(root)/.git/config")
        try write("vendored aws_access_key_id = \(awsKeyID)\n", to: "\(root)/vendor/lib.txt")
        _ = FileManager.default.createFile(atPath: "\(root)/logo.png", contents: Data([0x89, 0x50, 0x4E, 0x47, 0]) + Data("aws_access_key_id = \(awsKeyID)".utf8))
        try FileManager.default.copyItem(atPath: "\(fixtures)/trivy-image.json", toPath: "\(root)/trivy.json")
        try write("""
            secrets:
              - path: "test/fixtures/**"
                rule: private-key
                reason: throw-away key for the TLS tests
                expires: 2099-12-31
            vulnerabilities:
              - id: CVE-2024-45490
                reason: the parser is not reachable from our code
                expires: 2099-12-31
              - id: CVE-2023-50387
                reason: this acceptance ran out
                expires: 2020-01-01
            """, to: "\(root)/.gantry/scan-allowlist.yaml")
    }

    @Test func aClosedGateBlocksTheDeploymentAndSaysWhyWithoutShowingTheSecret() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("scanner", kind: "scan,noop", concurrency: 4)
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let root = env.logDirectory + "-workspace"
        try Self.workspace(root)
        let pipeline = """
            pipeline: gated
            environment: staging
            steps:
              - id: scan
                kind: scan
                with:
                  allowlist: \(root)/.gantry/scan-allowlist.yaml
                  secrets: { path: \(root), exclude: ["vendor/**"] }
                  vulnerabilities: { report: \(root)/trivy.json, fail_on: high }
              - { id: deploy, kind: noop, needs: [scan] }
            """
        let id = try await api.submit(pipeline, token: token).json.id
        let run = try await api.wait(id, token: token)
        #expect(run.status == "failed")
        let steps = Dictionary(uniqueKeysWithValues: run.steps.map { ($0.id, $0) })
        #expect(steps["deploy"]?.status == "skipped")
        let scan = try #require(steps["scan"])
        #expect(scan.attempts.count == 1, "a closed gate is not retried")
        #expect(scan.attempts.first?.error
            == "scan gate closed: 1 secret (config/prod.env:2 aws-access-key-id); 1 vulnerability at or above high (CVE-2023-50387)")
        let log = try await api.cli(["logs", id, "--step", "scan"], token: token).out
        #expect(log.contains("secret: config/prod.env:2 aws-access-key-id AKIA… (20 chars) fingerprint "), "\(log)")
        #expect(log.contains("allowed secret: test/fixtures/tls/key.pem:1 private-key"), "\(log)")
        #expect(log.contains("scanned 5 files"), "\(log)") // prod.env, key.pem, app.js, trivy.json, the allow-list
        #expect(log.contains("allowed: critical CVE-2024-45490 in libexpat1 2.5.0-1"), "\(log)")
        #expect(log.contains("blocking: high CVE-2023-50387 in libsystemd0"), "\(log)")
        #expect(log.contains("(CVE-2023-50387) expired on 2020-01-01; it accepts nothing now"), "\(log)")
        let details = try await api.cli(["run", id, "--output", "json"], token: token).out + log
        #expect(!details.contains(Self.awsKeyID), "the secret itself must never be written")
        _ = await worker.stop()
        _ = await dispatcher.stop()
    }

    @Test func reportsFromCommandsCountSeveritiesAndAnUnreadableReportFails() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("scanner", kind: "scan", concurrency: 4)
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let pipeline = """
            pipeline: reports
            environment: staging
            steps:
              - id: grype
                kind: scan
                with: { vulnerabilities: { command: "echo scanning >&2; cat \(Self.fixtures)/grype.json", fail_on: critical } }
              - id: sarif
                kind: scan
                with: { vulnerabilities: { report: "\(Self.fixtures)/trivy.sarif", fail_on: critical } }
              - id: clean
                kind: scan
                with: { vulnerabilities: { command: "cat \(Self.fixtures)/trivy-clean.json; exit 1" } }
              - id: garbage
                kind: scan
                with: { vulnerabilities: { command: "echo 'FATAL: database download failed'" } }
            """
        let id = try await api.submit(pipeline, token: token).json.id
        let run = try await api.wait(id, token: token)
        let steps = Dictionary(uniqueKeysWithValues: run.steps.map { ($0.id, $0) })
        #expect(steps["grype"]?.status == "failed")
        #expect(steps["grype"]?.attempts.first?.error == "scan gate closed: 1 vulnerability at or above critical (CVE-2024-45490)")
        #expect(steps["sarif"]?.attempts.first?.error == "scan gate closed: 1 vulnerability at or above critical (CVE-2024-45490)")
        #expect(steps["clean"]?.status == "succeeded", "\(steps["clean"]?.lastError ?? "")")
        let counts = steps["clean"]?.attempts.last?.outputs
        #expect(counts?["critical"] == .number(0) && counts?["high"] == .number(0) && counts?["blocking"] == .number(0))
        #expect(steps["garbage"]?.status == "failed")
        #expect(steps["garbage"]?.attempts.first?.error?.hasPrefix(
            "the output of with.vulnerabilities.command (which exited with code 0) cannot be read: the report is not JSON") == true)
        let log = try await api.cli(["logs", id, "--step", "grype"], token: token).out
        #expect(log.contains("scanning") && log.contains("vulnerabilities: grype report of registry.local/api:3f2a9c1, 3 findings"), "\(log)")
        _ = await worker.stop()
        _ = await dispatcher.stop()
    }

    @Test func diffModeReadsOnlyWhatTheCommitAdds() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("scanner", kind: "scan", concurrency: 4)
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let repo = env.logDirectory + "-repo"
        // An old secret already in history, then a commit that adds a new one.
        try Self.write("old_key = \(Self.awsKeyID)\n", to: "\(repo)/legacy.env")
        func git(_ arguments: String) async throws -> String {
            let result = try await Command.run(
                "/bin/sh", ["-c", "cd '\(repo)' && git -c user.name=t -c user.email=t@t \(arguments)"], stem: repo + "-git"
            )
            return result.out.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        _ = try await git("init -q && git add . && git -c user.name=t -c user.email=t@t commit -qm one")
        let slack = "xoxb-" + "2816449923-6201938475-qT8bN3mVz1LpXc7RkW4yHs9D"
        try Self.write("fine=1\nSLACK_BOT_TOKEN=\(slack)\n", to: "\(repo)/app/settings.env")
        _ = try await git("add . && git -c user.name=t -c user.email=t@t commit -qm two")
        let sha = try await git("rev-parse HEAD")
        let pipeline = """
            pipeline: diff
            environment: staging
            steps:
              - id: scan
                kind: scan
                with: { secrets: { path: \(repo), diff: true } }
            """
        let id = try await api.submit(pipeline, token: token, sha: sha).json.id
        let run = try await api.wait(id, token: token)
        #expect(run.steps.first?.attempts.first?.error == "scan gate closed: 1 secret (app/settings.env:2 slack-token)")
        let log = try await api.cli(["logs", id, "--step", "scan"], token: token).out
        #expect(log.contains("scanned 2 added lines of \(sha)^ \(sha)"), "\(log)")
        #expect(!log.contains(slack))
        _ = await worker.stop()
        _ = await dispatcher.stop()
    }
}
