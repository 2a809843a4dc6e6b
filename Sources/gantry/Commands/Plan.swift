import ArgumentParser
import Foundation
import GantryCore

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Show the steps a pipeline would run for a SHA, in dependency levels, and which are skipped and why.",
        discussion: """
            Steps of one level can run at the same time. Without --changed-files, path filters \
            (when.paths) skip nothing. Example: git diff --name-only main | gantry plan pipelines/production.yml --sha $SHA --changed-files -
            """
    )

    @Argument(help: "The pipeline file.")
    var file: String

    @Option(help: "The commit to deploy (7 to 64 hexadecimal digits, as submit takes).")
    var sha: String

    @Option(help: "The git ref (e.g. refs/heads/main), for if: conditions.")
    var ref: String?

    @Option(name: .customLong("changed-files"), help: "A file listing changed paths, one per line, or - for standard input.")
    var changedFiles: String?

    @Option(name: .customLong("param"), help: "A run parameter, k=v; repeatable.")
    var params: [String] = []

    @Option var output: OutputFormat = .text

    func validate() throws {
        guard Identifiers.isCommitSHA(sha) else {
            throw ValidationError("--sha '\(sha.prefix(80))': a commit is \(Identifiers.commitSHARule)")
        }
        for param in params where !param.contains("=") {
            throw ValidationError("--param '\(param)': write name=value")
        }
    }

    func run() throws {
        let (definition, diagnostics) = PipelineParser().parse(try InputFile.read(file, flag: "plan"), file: file)
        guard let definition else {
            for diagnostic in diagnostics { print(diagnostic) }
            throw ExitCode(1)
        }
        var files: [String]?
        if let changedFiles {
            let text = try InputFile.read(changedFiles, flag: "--changed-files", limit: 8 << 20)
            files = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        var given: [String: String] = [:]
        for param in params {
            let parts = param.split(separator: "=", maxSplits: 1).map(String.init)
            given[parts[0]] = parts.count > 1 ? parts[1] : ""
        }
        // The same check a submit makes: declared parameters only, with their defaults.
        let parameters: [String: String]
        switch PipelineParam.resolve(definition.params, given: given) {
        case .success(let values): parameters = values
        case .failure(let problem): throw UsageError("--param: \(problem)")
        }
        let plan = PipelinePlan.make(definition, changedFiles: files, params: parameters, ref: ref, environment: definition.environment)
        switch output {
        case .json:
            func json(_ step: PipelinePlan.Step) -> JSONValue {
                .object([
                    "id": .string(step.id), "kind": .string(step.kind),
                    "needs": .array(step.needs.map(JSONValue.string)),
                    "skipped": step.skipReason.map(JSONValue.string) ?? .null,
                ])
            }
            print(JSONValue.object([
                "pipeline": .string(definition.name), "sha": .string(sha),
                "levels": .array(plan.levels.map { .array($0.map(json)) }),
                "on_failure": .array(plan.onFailure.map(json)),
                "finally": .array(plan.finally.map(json)),
            ]).jsonText)
        case .text:
            print("pipeline \(definition.name) for \(sha)\(files == nil ? " (no --changed-files: path filters not applied)" : "")")
            func line(_ step: PipelinePlan.Step) -> String {
                let needs = step.needs.isEmpty ? "" : "  (after \(step.needs.joined(separator: ", ")))"
                let skip = step.skipReason.map { "  SKIPPED: \($0)" } ?? ""
                return "    \(step.id) [\(step.kind)]\(needs)\(skip)"
            }
            for (index, level) in plan.levels.enumerated() {
                print("  level \(index + 1)")
                for step in level { print(line(step)) }
            }
            if !plan.onFailure.isEmpty {
                print("  on failure")
                for step in plan.onFailure { print(line(step)) }
            }
            if !plan.finally.isEmpty {
                print("  finally")
                for step in plan.finally { print(line(step)) }
            }
        }
    }
}
