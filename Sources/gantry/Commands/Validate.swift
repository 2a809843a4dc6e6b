import ArgumentParser
import Foundation
import GantryCore

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check pipeline files and list every problem as file:line:column: message.",
        discussion: "Exits 0 when every file is valid, 1 when any problem is found."
    )

    @Argument(help: "Pipeline files (YAML).")
    var files: [String]

    @Option var output: OutputFormat = .text

    func run() throws {
        var problems = 0
        for file in files {
            let text: String
            do { text = try InputFile.read(file, flag: "validate") } catch {
                print("\(file):1:1: " + "\(error)".replacingOccurrences(of: "validate \(file): ", with: ""))
                problems += 1
                continue
            }
            let (definition, diagnostics) = PipelineParser().parse(text, file: file)
            problems += diagnostics.count
            switch output {
            case .text:
                for diagnostic in diagnostics { print(diagnostic) }
                if let definition {
                    let count = definition.steps.count + definition.onFailure.count + definition.finally.count
                    print("\(file): valid pipeline '\(definition.name)' with \(count) steps")
                }
            case .json:
                print(JSONValue.object([
                    "file": .string(file),
                    "valid": .bool(definition != nil),
                    "errors": .array(diagnostics.map { d in
                        .object(["line": .number(Double(d.line)), "column": .number(Double(d.column)), "message": .string(d.message)])
                    }),
                ]).jsonText)
            }
        }
        if problems > 0 { throw ExitCode(1) }
    }
}
