import Foundation

/// What a pipeline would do for one submission: its steps in dependency levels
/// (every step of a level can run at once), and which are skipped and why.
public struct PipelinePlan: Sendable, Equatable {
    public struct Step: Sendable, Equatable {
        public var id: String
        public var kind: String
        public var needs: [String]
        /// Why the step will not run; `nil` when it runs.
        public var skipReason: String?
    }

    public var levels: [[Step]]
    public var onFailure: [Step]
    public var finally: [Step]

    /// Plans `definition` for a submission.
    /// - Parameters:
    ///   - changedFiles: the files the SHA changed; `nil` when unknown, and then path filters do not skip.
    ///   - params: run parameters (`--param k=v`), for `if:` conditions.
    ///   - globBudget: how much path matching one plan may do (steps of the glob matcher). A
    ///     submit of hostile patterns against a megabyte of changed files stops there, and the
    ///     patterns left unmatched count as matching: a filter can only ever skip less.
    public static func make(
        _ definition: PipelineDefinition, changedFiles: [String]?, params: [String: String], ref: String?, environment: String?,
        globBudget: Int = 20_000_000
    ) -> PipelinePlan {
        // Each distinct pattern is matched against the changed files once, however many steps name it.
        var matched: [String: Bool] = [:]
        var budget = globBudget
        func anyFileMatches(_ patterns: [String], _ files: [String]) -> Bool {
            patterns.contains { pattern in
                if let known = matched[pattern] { return known }
                let compiled = PathGlob.Compiled(pattern)
                var result = false
                for file in files {
                    guard let hit = compiled.matches(file, budget: &budget) else {
                        result = true
                        break
                    }
                    if hit { result = true; break }
                }
                matched[pattern] = result
                return result
            }
        }
        func planned(_ step: PipelineStep) -> Step {
            var reason: String?
            if let files = changedFiles, !step.paths.isEmpty, !anyFileMatches(step.paths, files) {
                reason = "no changed file matches when.paths \(step.paths.joined(separator: ", "))"
            }
            if reason == nil, let condition = step.condition {
                switch Condition.evaluate(condition, params: params, ref: ref, environment: environment ?? definition.environment) {
                case .success(false): reason = "if: \(condition) is false"
                case .success(true): break
                case .failure(let problem): reason = "if: \(condition) cannot be decided before the run (\(problem))"
                }
            }
            return Step(id: step.id, kind: step.kind, needs: step.needs, skipReason: reason)
        }
        // Level of a step = 1 + the highest level of what it needs. Skipped steps
        // count as satisfied, so they keep their place and their dependents run.
        var level: [String: Int] = [:]
        func levelOf(_ id: String, _ visiting: Set<String> = []) -> Int {
            if let known = level[id] { return known }
            guard let step = definition.steps.first(where: { $0.id == id }), !visiting.contains(id) else { return 0 }
            let value = step.needs.map { levelOf($0, visiting.union([id])) + 1 }.max() ?? 0
            level[id] = value
            return value
        }
        var levels: [[Step]] = []
        for step in definition.steps {
            let index = levelOf(step.id)
            while levels.count <= index { levels.append([]) }
            levels[index].append(planned(step))
        }
        return PipelinePlan(levels: levels, onFailure: definition.onFailure.map(planned), finally: definition.finally.map(planned))
    }
}

/// The `if:` conditions a plan can decide before a run: `EXPR == 'text'`,
/// `EXPR != 'text'`, or `EXPR` alone (true when not empty and not "false"),
/// where EXPR is `${{ run.params.NAME }}`, `${{ run.ref }}` or `${{ run.environment }}`.
enum Condition {
    enum Problem: Error, CustomStringConvertible {
        case unsupported(String)
        var description: String {
            switch self { case .unsupported(let what): what }
        }
    }

    static func evaluate(_ text: String, params: [String: String], ref: String?, environment: String?) -> Result<Bool, Problem> {
        for op in ["==", "!="] {
            let parts = text.components(separatedBy: op)
            if parts.count == 2 {
                guard let left = value(parts[0], params: params, ref: ref, environment: environment) else {
                    return .failure(.unsupported("it reads a value known only while running"))
                }
                let literal = parts[1].trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "'\""))
                return .success(op == "==" ? left == literal : left != literal)
            }
        }
        guard let single = value(text, params: params, ref: ref, environment: environment) else {
            return .failure(.unsupported("write ${{ run.params.NAME }} == 'value'"))
        }
        return .success(!single.isEmpty && single != "false")
    }

    private static func value(_ text: String, params: [String: String], ref: String?, environment: String?) -> String? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard trimmed.hasPrefix("${{"), trimmed.hasSuffix("}}") else { return nil }
        let expression = trimmed.dropFirst(3).dropLast(2).trimmingCharacters(in: .whitespaces)
        if expression.hasPrefix("run.params.") { return params[String(expression.dropFirst("run.params.".count))] ?? "" }
        if expression == "run.ref" { return ref ?? "" }
        if expression == "run.environment" { return environment ?? "" }
        return nil
    }
}

