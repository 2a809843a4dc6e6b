import Foundation
import GantryCore
import GantryPostgres

/// A run with its steps' attempts, as `enqueue --wait` and `attempts` print it.
struct RunReport {
    let run: RunRecord
    let attempts: [AttemptResult]

    /// Loads the reports of these runs, in the order given.
    static func load(_ runIDs: [String], db: PostgresConnection) async throws -> [RunReport] {
        let runs = try await RunStore().runs(runIDs, on: db)
        let byID = Dictionary(runs.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var reports: [RunReport] = []
        for id in runIDs {
            guard let run = byID[id] else { continue }
            reports.append(RunReport(run: run, attempts: try await AttemptLedger().attempts(ofRun: id, on: db)))
        }
        return reports
    }

    /// One JSON object on one line.
    var json: String {
        var attemptValues: [JSONValue] = []
        for attempt in attempts {
            var object: [String: JSONValue] = [
                "step": .string(attempt.key.step.stepID),
                "attempt": .number(Double(attempt.key.attempt)),
                "status": .string(attempt.status.rawValue),
                "worker": .string(attempt.worker),
                "started_at": .string(Self.timestamp(us: attempt.startedAtUs)),
                "finished_at": .string(Self.timestamp(us: attempt.finishedAtUs)),
                "duration_ms": .number(Double(attempt.finishedAtUs - attempt.startedAtUs) / 1_000),
            ]
            object["exit_code"] = attempt.exitCode.map { .number(Double($0)) } ?? .null
            object["error"] = attempt.error.map(JSONValue.string) ?? .null
            attemptValues.append(.object(object))
        }
        let object: [String: JSONValue] = [
            "run": .string(run.id),
            "pipeline": .string(run.pipeline),
            "status": .string(run.status),
            "created_at": .string(Self.timestamp(us: run.createdAtMs * 1_000)),
            "finished_at": run.finishedAtMs.map { .string(Self.timestamp(us: $0 * 1_000)) } ?? .null,
            "attempts": .array(attemptValues),
        ]
        return JSONValue.object(object).jsonText
    }

    /// A few aligned lines for people.
    var text: String {
        var lines = ["run \(run.id)  \(run.status)  (\(run.pipeline))"]
        for attempt in attempts {
            let duration = String(format: "%.1fms", Double(attempt.finishedAtUs - attempt.startedAtUs) / 1_000)
            var line = "  \(attempt.key.step.stepID) #\(attempt.key.attempt)  \(attempt.status.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0))"
            line += " \(attempt.worker)  \(Self.timestamp(us: attempt.startedAtUs))  \(duration)"
            if let code = attempt.exitCode { line += "  exit \(code)" }
            if let error = attempt.error { line += "  \(error)" }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    static func timestamp(us: Int64) -> String { Timestamp.iso8601(us: us) }
}
