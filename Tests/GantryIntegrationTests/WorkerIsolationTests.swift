import Foundation
import GantryCore
import GantryTestSupport
import Testing

/// A worker run as an ordinary user, as production would run it: the commands of its steps
/// run as that same user, and still cannot read the worker's environment (its database and
/// Redis URLs, its secrets) because the worker made itself undumpable before any step ran.
@Suite struct WorkerIsolationTests {
    @Test func aStepRunAsTheWorkersUserCannotReadTheWorkersEnvironment() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        // The checkout may sit where only root can enter: the worker runs from a copy.
        let folder = "/tmp/gantry-nonroot-\(env.namespace)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let binary = folder + "/gantry"
        try? FileManager.default.removeItem(atPath: binary)
        try FileManager.default.copyItem(atPath: env.binary, toPath: binary)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: binary)
        // Its scratch space, writable by the worker's user.
        let scratch = folder + "/tmp"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o1777], ofItemAtPath: scratch)
        let secret = "s3cr3t-\(env.namespace)"
        let worker = try GantryProcess(
            binary: "/usr/bin/setpriv",
            arguments: ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", binary,
                        "worker", "--kind", "build", "--id", "nobody-worker", "--concurrency", "2", "--lease", "5s",
                        "--namespace", env.namespace],
            environment: ["GANTRY_REDIS_URL": env.redisURLText, "GANTRY_DATABASE_URL": env.workerURLText,
                          "GANTRY_SECRET_DEPLOY_KEY": secret, "TMPDIR": scratch, "HOME": scratch],
            log: env.logDirectory + "-nobody-worker.log"
        )
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let pipeline = """
            pipeline: snoop
            environment: staging
            steps:
              - id: snoop
                kind: build
                with:
                  run: |
                    echo "I am $(id -un)"
                    if cat /proc/$PPID/environ > /dev/null 2>&1; then echo "READ THE WORKER: $(tr '\\0' ' ' < /proc/$PPID/environ)"; else echo "the worker's environment is unreadable"; fi
                    env | grep -c GANTRY_DATABASE_URL || true
            """
        let run = try await api.submit(pipeline, token: token).json.id
        let done = try await api.wait(run, token: token, timeout: .seconds(60))
        #expect(done.status == "succeeded", "\(worker.log)")
        let log = try await api.cli(["logs", run, "--step", "snoop"], token: token).out
        #expect(log.contains("I am nobody"), "\(log)")
        #expect(log.contains("the worker's environment is unreadable"), "\(log)")
        #expect(!log.contains("READ THE WORKER") && !log.contains(secret) && !log.contains("postgresql://"), "\(log)")
        // Nor is it inherited: the step's own environment has no GANTRY_DATABASE_URL.
        #expect(log.split(separator: "\n").last == "0", "\(log)")
        _ = dispatcher
    }
}
