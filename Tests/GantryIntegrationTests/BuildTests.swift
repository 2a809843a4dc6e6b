import Crypto
import Foundation
import GantryCore
import GantryTestSupport
import Testing

/// The build kind run by a real worker process: real shell commands, a process
/// that ignores SIGTERM, one that leaves children behind, exit codes and signals.
@Suite struct BuildTests {
    /// Whether `pid` is a live process (a zombie waiting for its reaper counts as dead).
    static func isRunning(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(close, offsetBy: 2)]
        return state != "Z" && state != "X"
    }

    static func pid(in path: String) throws -> Int32 {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        guard let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { throw Failure("no pid in \(path): '\(text)'") }
        return pid
    }

    @Test func commandsGetValuesAsVariablesOutputsFlowOnAndTheWorkerEnvironmentStaysOut() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let secret = "npm_\(UUID().uuidString.prefix(12))"
        let worker = try env.worker("builder", kind: "build", concurrency: 4, environment: ["GANTRY_SECRET_NPM_TOKEN": secret])
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let marker = env.logDirectory + "-pwned"
        let pipeline = """
            pipeline: build
            environment: staging
            params: { branch: { required: true } }
            steps:
              - id: compile
                kind: build
                with:
                  run: |
                    echo "building ${{ run.params.branch }} at $GANTRY_SHA in $GANTRY_ENVIRONMENT"
                    test -z "${GANTRY_DATABASE_URL:-}" && test -z "${GANTRY_REDIS_URL:-}" && test -z "${GANTRY_SECRET_NPM_TOKEN:-}"
                    echo "token is $NPM_TOKEN"
                    echo "image=registry.local/api:$GANTRY_SHA" >> "$GANTRY_OUTPUT"
                    { echo "notes<<EOF"; echo "one"; echo "two"; echo "EOF"; } >> "$GANTRY_OUTPUT"
                    echo "to stderr" >&2
                  env: { NPM_TOKEN: "${{ secrets.NPM_TOKEN }}", MODE: release }
              - id: package
                kind: build
                needs: [compile]
                with:
                  commands:
                    - 'test "$MODE" = ""'
                    - 'echo "got ${{ steps.compile.outputs.image }} / ${{ steps.compile.outputs.notes }}"'
            """
        let branch = "$(touch \(marker))"
        let id = try await api.submit(pipeline, token: token, extra: ["params": .object(["branch": .string(branch)])]).json.id
        let run = try await api.wait(id, token: token)
        #expect(run.status == "succeeded", "\(run.steps.map { "\($0.id): \($0.lastError ?? "")" })")
        let compile = try #require(run.steps.first { $0.id == "compile" })
        #expect(compile.attempts.last?.outputs == ["image": .string("registry.local/api:3f2a9c1"), "notes": .string("one\ntwo")])
        let log = try await api.cli(["logs", id, "--step", "compile"], token: token).out
        #expect(log.contains("building \(branch) at 3f2a9c1 in staging"), "\(log)")
        #expect(log.contains("token is ***") && log.contains("to stderr"), "\(log)")
        #expect(!log.contains(secret))
        // The ledger's digest covers the whole log as streamed (the live log here holds all of it).
        let digest = Hex.encode(SHA256.hash(data: Data(log.utf8)))
        #expect(compile.attempts.last?.logSHA256 == digest, "\(log)")
        #expect(!FileManager.default.fileExists(atPath: marker), "a parameter's value was run by the shell")
        let packaged = try await api.cli(["logs", id, "--step", "package"], token: token).out
        #expect(packaged.contains("got registry.local/api:3f2a9c1 / one\ntwo"), "\(packaged)")
        _ = await worker.stop()
        _ = await dispatcher.stop()
    }

    @Test func exitCodesDecideRetriesAndSignalsAreRecorded() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("builder", kind: "build", concurrency: 4)
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let pipeline = """
            pipeline: codes
            environment: staging
            steps:
              - id: flaky
                kind: build
                retry: { max_attempts: 3, backoff: { initial: 100ms }, on_exit_codes: [75] }
                with: { run: 'if [ "$GANTRY_ATTEMPT" -lt 2 ]; then echo "temporary"; exit 75; fi; echo fine' }
              - id: broken
                kind: build
                retry: { max_attempts: 3, backoff: { initial: 100ms }, on_exit_codes: [75] }
                with: { run: 'exit 4' }
              - id: crashes
                kind: build
                retry: { max_attempts: 1 }
                with: { run: 'kill -SEGV $$' }
              - id: bad-dir
                kind: build
                with: { run: 'true', workdir: /nonexistent/dir }
            """
        let id = try await api.submit(pipeline, token: token).json.id
        let run = try await api.wait(id, token: token)
        let steps = Dictionary(uniqueKeysWithValues: run.steps.map { ($0.id, $0) })
        #expect(steps["flaky"]?.status == "succeeded")
        #expect(steps["flaky"]?.attempts.map(\.exitCode) == [75, nil])
        #expect(steps["broken"]?.attempts.count == 1, "exit 4 is not in on_exit_codes: no retry")
        #expect(steps["broken"]?.attempts.first?.exitCode == 4)
        #expect(steps["broken"]?.attempts.first?.error == "command exited with code 4")
        #expect(steps["crashes"]?.attempts.first?.exitCode == 139)
        #expect(steps["crashes"]?.attempts.first?.error == "command was killed by signal SIGSEGV (11)")
        #expect(steps["bad-dir"]?.attempts.count == 1, "bad inputs are not retried")
        #expect(steps["bad-dir"]?.attempts.first?.error == "with.workdir '/nonexistent/dir': no such directory on worker")
        _ = await worker.stop()
        _ = await dispatcher.stop()
    }

    @Test func aTimeoutStopsTheWholeGroupEvenWhenItIgnoresSIGTERM() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("builder", kind: "build", concurrency: 4)
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let dir = env.logDirectory + "-pids"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let pipeline = """
            pipeline: stubborn
            environment: staging
            steps:
              - id: stubborn
                kind: build
                timeout: 1s
                retry: { max_attempts: 1 }
                with:
                  kill_grace: 1s
                  run: |
                    trap '' TERM
                    sleep 60 & echo $! > \(dir)/child.pid
                    echo $$ > \(dir)/leader.pid
                    wait
              - id: polite
                kind: build
                timeout: 1s
                retry: { max_attempts: 1 }
                with:
                  kill_grace: 20s
                  run: 'echo $$ > \(dir)/polite.pid; exec sleep 60'
              - id: leaves-children
                kind: build
                with: { run: 'sleep 300 & echo $! > \(dir)/orphan.pid; echo started' }
            """
        let started = ContinuousClock.now
        let id = try await api.submit(pipeline, token: token).json.id
        let run = try await api.wait(id, token: token)
        let elapsed = ContinuousClock.now - started
        let steps = Dictionary(uniqueKeysWithValues: run.steps.map { ($0.id, $0) })
        #expect(steps["stubborn"]?.attempts.map(\.status) == ["timed_out"])
        #expect(steps["polite"]?.attempts.map(\.status) == ["timed_out"])
        #expect(steps["leaves-children"]?.status == "succeeded")
        // 1 s timeout + 1 s grace for the stubborn one; SIGTERM ends the polite one at once.
        #expect(elapsed < .seconds(8), "took \(elapsed)")
        for name in ["leader", "child", "polite", "orphan"] {
            let pid = try Self.pid(in: "\(dir)/\(name).pid")
            try await env.eventually("process \(name) (\(pid)) to be gone", timeout: .seconds(5)) { !Self.isRunning(pid) }
        }
        let stubbornLog = try await api.cli(["logs", id, "--step", "stubborn"], token: token).out
        #expect(stubbornLog.contains("ignored SIGTERM and was killed after 1s"), "\(stubbornLog)")
        let politeLog = try await api.cli(["logs", id, "--step", "polite"], token: token).out
        #expect(politeLog.contains("stopped with SIGTERM to its process group"), "\(politeLog)")
        let orphanLog = try await api.cli(["logs", id, "--step", "leaves-children"], token: token).out
        #expect(orphanLog.contains("started") && orphanLog.contains("left processes running in its group; they were killed"), "\(orphanLog)")
        _ = await worker.stop()
        _ = await dispatcher.stop()
    }

    @Test func cancelStopsTheRunningCommand() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("builder", kind: "build", concurrency: 4)
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let pidFile = env.logDirectory + "-long.pid"
        let pipeline = """
            pipeline: long
            environment: staging
            steps:
              - id: long
                kind: build
                with: { run: 'echo $$ > \(pidFile); sleep 120' }
            """
        let id = try await api.submit(pipeline, token: token).json.id
        try await env.eventually("the command to start") { FileManager.default.fileExists(atPath: pidFile) }
        let pid = try Self.pid(in: pidFile)
        #expect(Self.isRunning(pid))
        #expect(try await api.cli(["cancel", id], token: token).status == 0)
        let run = try await api.wait(id, token: token, timeout: .seconds(15))
        #expect(run.status == "canceled")
        #expect(run.steps.first?.attempts.last?.status == "canceled")
        try await env.eventually("the command to be gone", timeout: .seconds(5)) { !Self.isRunning(pid) }
        _ = await worker.stop()
        _ = await dispatcher.stop()
    }
}

