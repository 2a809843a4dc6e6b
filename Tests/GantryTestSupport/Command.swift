import Foundation

/// Runs a command to its end without holding a thread of the cooperative pool (two on this
/// machine): its output goes to files, read once it has exited, and its input comes from one,
/// and it is waited for by polling. A pipe would do neither safely: reading one to its end
/// blocks the thread, and a pipe's end inherited by a process another test started at the same
/// moment keeps it open until that process exits.
package enum Command {
    package struct Result: Sendable {
        package var status: Int32
        package var out: String
        package var err: String
    }

    /// `stem` names the files (`stem.out`, `stem.err`, `stem.in`); the command is killed after `timeout`.
    package static func run(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil, stdin: String? = nil,
        stem: String, timeout: Duration = .seconds(120)
    ) async throws -> Result {
        let (outPath, errPath, inPath) = (stem + ".out", stem + ".err", stem + ".in")
        try (stdin ?? "").write(toFile: inPath, atomically: false, encoding: .utf8)
        for path in [outPath, errPath] { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        process.standardInput = FileHandle(forReadingAtPath: inPath)
        try process.run()
        try await exit(of: process, timeout: timeout, what: ([executable] + arguments).joined(separator: " "))
        return Result(
            status: process.terminationStatus,
            out: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
            err: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        )
    }

    /// Waits for a started process to exit, by polling; kills it and throws after `timeout`.
    package static func exit(of process: Process, timeout: Duration = .seconds(120), what: String) async throws {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            guard ContinuousClock.now < deadline else {
                kill(process.processIdentifier, SIGKILL)
                throw Failure("\(what.prefix(200)) did not exit within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}
