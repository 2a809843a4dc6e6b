import Foundation
import GantryCore
import Testing

/// What a CI engineer sees (issue 22): output that reaches a CI log as it happens, and a
/// pipeline reader that goes away ending the command quietly.
@Suite struct CIUsageTests {
    @Test func submitWaitWritesEachChangeToAFileWhileTheRunIsStillGoing() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("w1")
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let pipeline = try api.file("slow.yml", """
            pipeline: slow
            environment: staging
            steps:
              - { id: quick, kind: noop }
              - { id: slow, kind: noop, needs: [quick], with: { sleep_ms: 4000 } }
            """)
        // stdout is a file, as a CI log is.
        let outPath = env.logDirectory + "-submit.out"
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: env.binary)
        process.arguments = ["submit", "--pipeline", pipeline, "--sha", "3f2a9c1", "--wait"]
        process.environment = ProcessInfo.processInfo.environment.merging(["GANTRY_URL": api.base, "GANTRY_TOKEN": token]) { $1 }
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        process.standardError = FileHandle.nullDevice
        try process.run()
        try await env.eventually("the quick step's success in the file") {
            ((try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "").contains("quick")
                && ((try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "").contains("succeeded")
        }
        // Written while the slow step still runs, not when the command ends.
        #expect(process.isRunning)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        _ = (dispatcher, worker)
    }

    @Test func aReaderThatGoesAwayEndsLogsQuietly() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("w1")
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let long = String(repeating: "x", count: 600_000)
        let run = try await api.submit("""
            pipeline: loud
            environment: staging
            steps: [{ id: talk, kind: noop, with: { log: "\(long)" } }]
            """, token: token).json.id
        try await api.wait(run, token: token)
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/bash")
        shell.arguments = ["-c", "\"$0\" logs \"$1\" --step talk | head -c 1 >/dev/null; echo \"${PIPESTATUS[0]}\"", env.binary, run]
        shell.environment = ProcessInfo.processInfo.environment.merging(["GANTRY_URL": api.base, "GANTRY_TOKEN": token]) { $1 }
        let out = Pipe(), err = Pipe()
        shell.standardOutput = out
        shell.standardError = err
        try shell.run()
        let status = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        shell.waitUntilExit()
        // 141 (SIGPIPE's status) or 0 when everything fit in the pipe first; never a crash, never a word on stderr.
        #expect(["141", "0"].contains(status.trimmingCharacters(in: .whitespacesAndNewlines)), "\(status)")
        #expect(errors.isEmpty, "\(errors)")
        _ = (dispatcher, worker)
    }
}
