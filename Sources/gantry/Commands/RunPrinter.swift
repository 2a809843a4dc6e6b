import Foundation
import GantryCore

/// Prints runs for people: a run with its DAG of steps, and live progress lines.
enum RunPrinter {
    /// Runs with more steps than this are summarized unless every step is asked for.
    static let summaryThreshold = 40

    /// The run and each step with its state, attempts and why it waits. A large run (a
    /// fan-out of thousands) is summarized unless `all`: counts by state, then the failed
    /// steps, then those still going, at most `summaryThreshold` of them.
    static func describe(_ run: RunView, all: Bool = true) -> String {
        var lines: [String] = []
        var head = "run \(run.id)  \(run.status.uppercased())  \(run.pipeline)"
        if let failed = run.cleanupFailed { head += "  (cleanup failed: \(failed.joined(separator: ", ")))" }
        if let environment = run.environment { head += " → \(environment)" }
        if let sha = run.sha { head += "  sha \(sha.prefix(12))" }
        if let ref = run.ref { head += " (\(ref))" }
        lines.append(head)
        var meta = "  submitted by \(run.submitter) at \(run.createdAt)"
        if let duration = run.durationMs { meta += ", took \(format(ms: Double(duration)))" }
        lines.append(meta)
        if let waiting = run.waitingFor { lines.append("  \(waiting)") }
        if let reason = run.stopReason { lines.append("  stopped: \(reason)") }
        var steps = run.steps
        if !all && run.steps.count > summaryThreshold {
            lines.append("  \(run.steps.count) steps: " + counts(run.steps))
            steps = shown(run)
        }
        var section = "main"
        for step in steps {
            if step.section != section {
                section = step.section
                lines.append("  \(section):")
            }
            var line = "  \(symbol(step.status)) \(step.id.padding(toLength: 22, withPad: " ", startingAt: 0)) \(step.kind.padding(toLength: 14, withPad: " ", startingAt: 0)) \(step.status)"
            if !step.needs.isEmpty { line += "  needs \(step.needs.joined(separator: ","))" }
            lines.append(line)
            if let worker = step.worker { lines.append("      on \(worker) since \(step.startedAt ?? "?")") }
            if let waiting = step.waitingFor { lines.append("      \(waiting)") }
            if let skip = step.skipReason { lines.append("      skipped: \(skip)") }
            if let approvals = step.approvals {
                switch approvals.state {
                case "approved"?: lines.append("      approved by \(approvals.approvedBy.joined(separator: ", ")) (\(approvals.approvedBy.count) of \(approvals.required) required)")
                case "timed_out"?: lines.append("      timed out: \(step.lastError ?? "no decision before \(approvals.deadline ?? "its deadline")")")
                default: break
                }
                for decision in approvals.decisions {
                    lines.append("      \(decision.decision) by \(decision.by) at \(decision.at)\(decision.comment.map { ": \($0)" } ?? "")")
                }
            }
            for attempt in step.attempts {
                var text = "      #\(attempt.attempt) \(attempt.status) on \(attempt.worker) at \(attempt.startedAt), \(format(ms: attempt.durationMs))"
                if let code = attempt.exitCode { text += ", exit \(code)" }
                if let error = attempt.error { text += ": \(error)" }
                lines.append(text)
            }
        }
        if steps.count < run.steps.count {
            lines.append("  … \(run.steps.count - steps.count) more steps (gantry run \(run.id) --all shows every one)")
        }
        return lines.joined(separator: "\n")
    }

    /// How many steps are in each state, the unfinished and failed first: "1 failed, 59 succeeded".
    private static func counts(_ steps: [StepView]) -> String {
        let order = ["failed", "running", "queued", "retrying", "awaiting_approval", "pending", "succeeded", "skipped", "canceled"]
        var counts: [String: Int] = [:]
        for step in steps { counts[step.status, default: 0] += 1 }
        return counts.sorted { (order.firstIndex(of: $0.key) ?? order.count, $0.key) < (order.firstIndex(of: $1.key) ?? order.count, $1.key) }
            .map { "\($0.value) \($0.key)" }.joined(separator: ", ")
    }

    /// The steps a summary shows: failed ones first, then those still going, in pipeline order.
    private static func shown(_ run: RunView) -> [StepView] {
        let failed = run.steps.filter { $0.status == "failed" }
        let going = run.steps.filter { ["running", "queued", "retrying", "awaiting_approval"].contains($0.status) }
        return Array((failed + going).prefix(summaryThreshold))
    }

    /// One line for a listing.
    static func summary(_ run: RunView) -> String {
        var line = "\(run.id)  \(run.status.padding(toLength: 9, withPad: " ", startingAt: 0)) \(run.pipeline)"
        if let environment = run.environment { line += " → \(environment)" }
        if let sha = run.sha { line += "  \(sha.prefix(12))" }
        line += "  by \(run.submitter)  \(run.createdAt)"
        if let waiting = run.waitingFor { line += "  (\(waiting))" }
        return line
    }

    /// Lines for what changed between two states of a run: one per step whose status moved.
    static func changes(from old: RunView?, to new: RunView) -> [String] {
        let before = Dictionary((old?.steps ?? []).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var lines: [String] = []
        let runLine = old?.status != new.status ? "run \(new.isFinished ? new.outcome : new.status)\(new.waitingFor.map { " — \($0)" } ?? "")" : nil
        if let runLine, !new.isFinished { lines.append(runLine) }
        for step in new.steps where before[step.id]?.status != step.status || before[step.id]?.attempt != step.attempt
            || (step.status == "queued" && step.waitingFor?.hasPrefix("no live worker") == true && before[step.id]?.waitingFor != step.waitingFor) {
            // The first view lists only what has begun; pending steps show up when they move.
            if old == nil, step.status == "pending" { continue }
            var line = "\(step.id): \(step.status)"
            if step.attempt > 1, step.status == "queued" || step.status == "running" || step.status == "retrying" { line += " (attempt \(step.attempt))" }
            if let worker = step.worker { line += " on \(worker)" }
            if let waiting = step.waitingFor, step.status == "queued", waiting.hasPrefix("no live worker") { line += " — \(waiting)" }
            if let last = step.attempts.last, step.status == "succeeded" || step.status == "failed" || step.status == "canceled" {
                line += " in \(format(ms: last.durationMs))"
                if let error = last.error, step.status != "succeeded" { line += ": \(error)" }
            }
            if let waiting = step.waitingFor, step.status == "awaiting_approval" { line += " — \(waiting)" }
            if let skip = step.skipReason { line += " — \(skip)" }
            lines.append(line)
        }
        if let runLine, new.isFinished { lines.append(runLine) }
        return lines
    }

    /// A compact one-line count of steps by state, for a terminal.
    static func progress(_ run: RunView) -> String {
        let finished = run.steps.filter { ["succeeded", "failed", "canceled", "skipped"].contains($0.status) }.count
        let running = run.steps.filter { $0.status == "queued" || $0.status == "running" || $0.status == "retrying" }.count
        let waiting = run.steps.filter { $0.status == "awaiting_approval" }.count
        var line = "[\(finished)/\(run.steps.count) done, \(running) running"
        if waiting > 0 { line += ", \(waiting) awaiting approval" }
        return line + "] \(run.status)"
    }

    static func symbol(_ status: String) -> String {
        switch status {
        case "succeeded": "✓"
        case "failed": "✗"
        case "canceled": "⊘"
        case "skipped": "–"
        case "running": "▶"
        case "queued", "retrying": "…"
        case "awaiting_approval": "?"
        default: "·"
        }
    }

    static func format(ms: Double) -> String {
        ms < 1_000 ? String(format: "%.0fms", ms) : ms < 120_000 ? String(format: "%.1fs", ms / 1_000) : String(format: "%.1fmin", ms / 60_000)
    }
}
