import Foundation
import GantryAPI
import GantryCore
import OpenAPIRuntime

// The API's generated types, read into the views the CLI prints (GantryCore's `RunView`, which the
// dispatcher writes): what reached the CLI is printed exactly as the dispatcher described it.

extension RunView {
    init(_ run: Components.Schemas.Run) {
        self.init(
            id: run.id, pipeline: run.pipeline, environment: run.environment, sha: run.sha, ref: run.ref,
            submitter: run.submitter, status: run.status.rawValue, phase: run.phase.rawValue,
            definitionSHA256: run.definitionSha256, createdAt: MillisecondDates.text(run.createdAt),
            startedAt: run.startedAt.map(MillisecondDates.text), finishedAt: run.finishedAt.map(MillisecondDates.text),
            durationMs: run.durationMs.map(Int64.init), waitingFor: run.waitingFor, stopReason: run.stopReason,
            steps: run.steps.map(StepView.init)
        )
        // The dispatcher's own reading of which cleanup steps failed.
        cleanupFailed = run.cleanupFailed
    }
}

extension StepView {
    init(_ step: Components.Schemas.Step) {
        self.init(
            id: step.id, kind: step.kind, section: step.section.rawValue, needs: step.needs, status: step.status.rawValue,
            attempt: step.attempt, waitingFor: step.waitingFor, skipReason: step.skipReason, lastError: step.lastError,
            approvals: step.approvals.map(ApprovalView.init), attempts: step.attempts.map(AttemptView.init)
        )
        worker = step.worker
        startedAt = step.startedAt.map(MillisecondDates.text)
    }
}

extension ApprovalView {
    init(_ approvals: Components.Schemas.Step.ApprovalsPayload) {
        self.init(
            required: approvals.required, approvedBy: approvals.approvedBy,
            decisions: approvals.decisions.map {
                Decision(decision: $0.decision.rawValue, by: $0.by, comment: $0.comment, at: MillisecondDates.text($0.at))
            },
            state: approvals.state?.rawValue, deadline: approvals.deadline.map(MillisecondDates.text)
        )
    }
}

extension AttemptView {
    init(_ attempt: Components.Schemas.Attempt) {
        self.init(
            attempt: attempt.attempt, status: attempt.status.rawValue, worker: attempt.worker,
            exitCode: attempt.exitCode.map(Int32.init(truncatingIfNeeded:)), error: attempt.error,
            startedAt: MillisecondDates.text(attempt.startedAt), finishedAt: MillisecondDates.text(attempt.finishedAt),
            durationMs: attempt.durationMs, outputs: Self.outputs(attempt.outputs), logSHA256: attempt.logSha256
        )
    }

    /// A step's outputs (strings, numbers, booleans) as JSON values.
    private static func outputs(_ container: OpenAPIObjectContainer) -> [String: JSONValue] {
        guard let data = try? JSONEncoder().encode(container),
              case .object(let object)? = JSONValue.parse(String(decoding: data, as: UTF8.self))
        else { return [:] }
        return object
    }
}

/// The API's times (`2026-12-05T12:00:00.123Z`, milliseconds, UTC) read and written without
/// loss: Foundation's ISO 8601 formatter would turn .123 into .122 on the way back.
struct MillisecondDates: DateTranscoder {
    func encode(_ date: Date) throws -> String { Self.text(date) }

    func decode(_ text: String) throws -> Date {
        guard let ms = Timestamp.parseISO8601(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "'\(text.prefix(40))' is not an ISO 8601 time"))
        }
        return Date(timeIntervalSince1970: Double(ms) / 1_000)
    }

    static func text(_ date: Date) -> String {
        Timestamp.iso8601(ms: Int64((date.timeIntervalSince1970 * 1_000).rounded()))
    }
}
