import Crypto
import Foundation
import GantryCore
import GantryProcess
import GantryRuntime

/// The `scan` kind: two gates, usable together, that stop a deployment.
///
/// ```yaml
/// with:
///   allowlist: .gantry/scan-allowlist.yaml   # accepted findings, each with a reason and an expiry
///   secrets:
///     path: .                  # the workspace to scan (default: the worker's directory)
///     diff: true               # only lines the commit adds (git diff SHA^ SHA); or diff: { base: origin/main }
///     exclude: ["vendor/**"]   # globs, relative to path
///   vulnerabilities:
///     report: reports/trivy.json          # or command: "trivy image -q -f json registry.local/api:${{ run.short_sha }}"
///     format: trivy | sarif | grype       # default: told from the report
///     fail_on: high                       # critical | high | medium | low (default high)
/// ```
/// Secret findings are reported as `file:line rule` with a masked value and a
/// fingerprint (for the allow-list), never the value. A report that cannot be read
/// fails the step: a gate without evidence never passes. Outputs: `secrets`
/// (blocking findings), `secrets_allowed`, and for vulnerabilities `critical`,
/// `high`, `medium`, `low`, `unknown`, `blocking` and `allowed`.
public struct ScanExecutor: StepExecutor {
    public let kind = "scan"

    private let environment: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    public func execute(_ context: StepContext) async throws -> StepOutputs {
        let inputs = try context.decodeInputs(ScanInputs.self)
        guard inputs.secrets != nil || inputs.vulnerabilities != nil else {
            throw StepFailure("with: give secrets:, vulnerabilities: or both", retryable: false)
        }
        let today = String(Timestamp.iso8601(ms: WallClock.nowMs()).prefix(10))
        var allowlist = ScanAllowlist()
        if let path = inputs.allowlist {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw StepFailure("with.allowlist '\(path)': no such file on the worker", retryable: false)
            }
            do {
                allowlist = try ScanAllowlist.parse(String(decoding: data, as: UTF8.self), file: path)
            } catch {
                throw StepFailure("with.allowlist: \(error)", retryable: false)
            }
            for entry in allowlist.expired(today: today) {
                context.log.write("allow-list \(path):\(entry.line) (\(entry.subject)) expired on \(entry.expires); it accepts nothing now")
            }
        }
        var outputs: StepOutputs = [:]
        var problems: [String] = []
        if let gate = inputs.secrets {
            let result = try await SecretScan(gate, context: context, environment: environment).run(allowlist: allowlist, today: today)
            outputs["secrets"] = .number(Double(result.blocking.count))
            outputs["secrets_allowed"] = .number(Double(result.allowed))
            if !result.blocking.isEmpty {
                let shown = result.blocking.prefix(3).map { "\($0.path):\($0.line) \($0.rule)" }.joined(separator: ", ")
                problems.append("\(result.blocking.count) secret\(result.blocking.count == 1 ? "" : "s") (\(shown)\(result.blocking.count > 3 ? ", …" : ""))")
            }
        }
        if let written = inputs.vulnerabilities {
            let gate = try await VulnerabilityGate(written, context: context, environment: environment)
            let result = gate.evaluate(try await gate.report(), allowlist: allowlist, today: today)
            for severity in VulnerabilityReport.Severity.allCases {
                outputs[severity.rawValue] = .number(Double(result.counts[severity] ?? 0))
            }
            outputs["blocking"] = .number(Double(result.blocking.count))
            outputs["allowed"] = .number(Double(result.allowed))
            if !result.blocking.isEmpty {
                let ids = Array(Set(result.blocking.map(\.id))).sorted()
                problems.append("\(result.blocking.count) vulnerabilit\(result.blocking.count == 1 ? "y" : "ies") at or above \(gate.failOn.rawValue) (\(ids.prefix(3).joined(separator: ", "))\(ids.count > 3 ? ", …" : ""))")
            }
        }
        if !problems.isEmpty {
            throw StepFailure("scan gate closed: \(problems.joined(separator: "; "))", exitCode: 1, retryable: false)
        }
        return outputs
    }
}

/// The secrets gate: the workspace, or the lines a commit adds.
struct SecretScan {
    struct Finding {
        var path: String
        var line: Int
        var rule: String
        var masked: String
        var fingerprint: String
    }

    let root: String
    let diffBase: String??
    let exclude: [String]
    let context: StepContext
    let environment: [String: String]
    static let maxFileBytes = 1 << 20

    /// `diffBase`: nil scans the workspace; `.some(nil)` the commit's own diff; `.some(base)` base...SHA.
    init(_ gate: ScanInputs.SecretsGate, context: StepContext, environment: [String: String]) throws {
        root = gate.path ?? "."
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw StepFailure("with.secrets.path '\(root)': no such directory on the worker", retryable: false)
        }
        switch gate.diff {
        case nil, .off?: diffBase = nil
        case .commit?: diffBase = .some(nil)
        case .base(let base)?:
            guard !base.isEmpty else {
                throw StepFailure("with.secrets.diff.base: give the ref to compare with (origin/main)", retryable: false)
            }
            diffBase = .some(base)
        }
        exclude = gate.exclude ?? []
        self.context = context
        self.environment = environment
    }

    func run(allowlist: ScanAllowlist, today: String) async throws -> (blocking: [Finding], allowed: Int) {
        var findings: [Finding] = []
        var scanned = 0
        if let base = diffBase {
            for added in try await addedLines(base: base) where !excluded(added.path) {
                findings += matches(in: added.text, path: added.path, line: added.line)
            }
            scanned = Set(findings.map(\.path)).count
        } else {
            var skipped = 0
            for path in try files() {
                guard let text = readText(path) else {
                    skipped += 1
                    continue
                }
                scanned += 1
                var number = 0
                for line in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
                    number += 1
                    findings += matches(in: String(line), path: path, line: number)
                }
            }
            context.log.write("secrets: scanned \(scanned) files under \(root)\(skipped > 0 ? " (\(skipped) binary or larger than 1 MiB skipped)" : "")")
        }
        var blocking: [Finding] = []
        var allowed = 0
        for finding in findings {
            let place = "\(finding.path):\(finding.line) \(finding.rule) \(finding.masked) fingerprint \(finding.fingerprint)"
            if let entry = allowlist.allowsSecret(path: finding.path, rule: finding.rule, fingerprint: finding.fingerprint, today: today) {
                allowed += 1
                context.log.write("allowed secret: \(place) — \(entry.reason) (until \(entry.expires))")
            } else {
                blocking.append(finding)
                context.log.write("secret: \(place)")
            }
        }
        return (blocking, allowed)
    }

    private func matches(in line: String, path: String, line number: Int) -> [Finding] {
        SecretRules.scan(line).map { match in
            let digest = SHA256.hash(data: Data("\(match.rule):\(match.value)".utf8))
            return Finding(path: path, line: number, rule: match.rule, masked: match.masked, fingerprint: String(Hex.encode(digest).prefix(16)))
        }
    }

    private func excluded(_ path: String) -> Bool {
        exclude.contains { PathGlob.matches($0, path) }
    }

    /// Regular files under the root, relative to it; `.git` and excluded paths left out, symlinks not followed.
    private func files() throws -> [String] {
        guard let walker = FileManager.default.enumerator(
            at: URL(fileURLWithPath: root), includingPropertiesForKeys: [.isRegularFileKey, .isDirectoryKey, .isSymbolicLinkKey]
        ) else { throw StepFailure("with.secrets.path '\(root)': cannot be read") }
        let base = URL(fileURLWithPath: root).standardizedFileURL.path
        var out: [String] = []
        for case let url as URL in walker {
            let full = url.standardizedFileURL.path
            let relative = full.hasPrefix(base + "/") ? String(full.dropFirst(base.count + 1)) : url.lastPathComponent
            let values = try? url.resourceValues(forKeys: [.isRegularFileKey, .isDirectoryKey, .isSymbolicLinkKey])
            if values?.isDirectory == true {
                if url.lastPathComponent == ".git" || excluded(relative) || excluded(relative + "/") { walker.skipDescendants() }
                continue
            }
            guard values?.isRegularFile == true, values?.isSymbolicLink != true, !excluded(relative) else { continue }
            out.append(relative)
        }
        return out.sorted()
    }

    /// The file as text; nil when it is binary (a NUL in its first 8 KiB) or too large.
    private func readText(_ relative: String) -> String? {
        let path = root + "/" + relative
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              let size = attributes[.size] as? Int, size <= SecretScan.maxFileBytes,
              let data = FileManager.default.contents(atPath: path) else { return nil }
        if data.prefix(8_192).contains(0) { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    /// The lines the run's commit adds (or base...SHA adds), from git.
    private func addedLines(base: String?) async throws -> [UnifiedDiff.AddedLine] {
        guard let sha = context.bindings["run.sha"], !sha.isEmpty else {
            throw StepFailure("with.secrets.diff: the run has no SHA to diff", retryable: false)
        }
        let range = base.map { ["\($0)...\(sha)"] } ?? ["\(sha)^", sha]
        let scratch = try Scratch(for: context.job)
        defer { scratch.remove() }
        let path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        guard let git = ChildProcess.locate("git", path: path) else {
            throw StepFailure("with.secrets.diff: git is not installed on this worker", retryable: false)
        }
        let process = ChildProcess(
            // The revisions come from the pipeline: after --end-of-options, '-…' can only be a revision.
            executable: git, arguments: ["-C", root, "diff", "--unified=0", "--no-color", "--no-ext-diff", "--end-of-options"] + range,
            environment: ShellCommand.baseEnvironment(context, workerEnvironment: environment), stdoutFile: scratch.path("diff")
        )
        let log = context.log
        let termination = try await process.run { log.write("git: \($0)") }
        if termination.stopped { throw CancellationError() }
        guard termination.ending == .exited(0) else {
            throw StepFailure("with.secrets.diff: git diff \(range.joined(separator: " ")) \(termination.ending)", retryable: false)
        }
        let diff = FileManager.default.contents(atPath: scratch.path("diff")) ?? Data()
        let lines = UnifiedDiff.addedLines(String(decoding: diff, as: UTF8.self))
        context.log.write("secrets: scanned \(lines.count) added lines of \(range.joined(separator: " "))")
        return lines
    }
}

/// The vulnerabilities gate: a scanner's report against a severity threshold.
struct VulnerabilityGate {
    let source: Source
    let format: VulnerabilityReport.Format?
    let failOn: VulnerabilityReport.Severity
    let context: StepContext
    let environment: [String: String]

    enum Source {
        case file(String)
        case command(ShellCommand)
    }

    init(_ gate: ScanInputs.VulnerabilitiesGate, context: StepContext, environment: [String: String]) async throws {
        switch (gate.report, gate.command) {
        case (let path?, nil): source = .file(path)
        case (nil, let script?):
            source = .command(try ShellCommand(
                script, field: "with.vulnerabilities.command", shellName: nil, context: context,
                path: environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
            ))
        case (.some, .some): throw StepFailure("with.vulnerabilities: give report or command, not both", retryable: false)
        case (nil, nil): throw StepFailure("with.vulnerabilities: give report (a path) or command (whose stdout is the report)", retryable: false)
        }
        format = gate.format
        failOn = (gate.failOn ?? .high).severity
        self.context = context
        self.environment = environment
    }

    func report() async throws -> VulnerabilityReport {
        let text: String
        let origin: String
        switch source {
        case .file(let path):
            guard let data = FileManager.default.contents(atPath: path) else {
                throw StepFailure("with.vulnerabilities.report '\(path)': no such file on the worker", retryable: false)
            }
            text = String(decoding: data, as: UTF8.self)
            origin = "with.vulnerabilities.report '\(path)'"
        case .command(let command):
            let scratch = try Scratch(for: context.job)
            defer { scratch.remove() }
            let process = ChildProcess(
                executable: command.executable, arguments: command.arguments,
                environment: ShellCommand.baseEnvironment(context, workerEnvironment: environment).merging(command.variables) { $1 },
                stdoutFile: scratch.path("report")
            )
            let log = context.log
            let output = log.processOutput()
            let termination = try await process.run { output.write($0) }
            if termination.stopped { throw CancellationError() }
            text = String(decoding: FileManager.default.contents(atPath: scratch.path("report")) ?? Data(), as: UTF8.self)
            origin = "the output of with.vulnerabilities.command (which \(termination.ending))"
            if termination.ending != .exited(0) {
                context.log.write("[gantry] the scanner \(termination.ending); reading its report")
            }
        }
        do {
            let report = try VulnerabilityReport.parse(text, format: format)
            let count = report.findings.count
            context.log.write("vulnerabilities: \(report.format.rawValue) report\(report.target.isEmpty ? "" : " of \(report.target)"), \(count) finding\(count == 1 ? "" : "s")")
            return report
        } catch {
            throw StepFailure("\(origin) cannot be read: \(error)", retryable: false)
        }
    }

    func evaluate(_ report: VulnerabilityReport, allowlist: ScanAllowlist, today: String)
        -> (counts: [VulnerabilityReport.Severity: Int], blocking: [VulnerabilityReport.Finding], allowed: Int) {
        var counts: [VulnerabilityReport.Severity: Int] = [:]
        var blocking: [VulnerabilityReport.Finding] = []
        var allowed = 0
        for finding in report.findings {
            counts[finding.severity, default: 0] += 1
            let fix = finding.fixedVersion.map { ", fixed in \($0)" } ?? ""
            let line = "\(finding.severity.rawValue) \(finding.id) in \(finding.location)\(fix)"
            guard finding.severity >= failOn else { continue }
            if let entry = allowlist.allowsVulnerability(id: finding.id, today: today) {
                allowed += 1
                context.log.write("allowed: \(line) — \(entry.reason) (until \(entry.expires))")
            } else {
                blocking.append(finding)
                context.log.write("blocking: \(line)")
            }
        }
        let below = report.findings.count - blocking.count - allowed
        context.log.write("gate fail_on \(failOn.rawValue): \(blocking.count) blocking, \(allowed) allowed, \(below) below the gate")
        return (counts, blocking, allowed)
    }
}
