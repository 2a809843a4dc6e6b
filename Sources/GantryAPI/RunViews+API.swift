package import Foundation
package import GantryCore
package import OpenAPIRuntime

// The API's generated types and GantryCore's views of a run, both ways: the dispatcher builds
// `RunView`s and answers with `Components.Schemas.Run`; the CLI reads the answer back into a
// `RunView` and prints it. Times are carried without loss (`MillisecondDates`).

extension Components.Schemas.Run {
    package init(_ view: RunView) {
        self.init(
            id: view.id, pipeline: view.pipeline, environment: view.environment, sha: view.sha, ref: view.ref,
            submitter: view.submitter, status: .init(rawValue: view.status) ?? .waiting, phase: .init(rawValue: view.phase) ?? .notStarted,
            definitionSha256: view.definitionSHA256, createdAt: MillisecondDates.date(view.createdAt),
            startedAt: view.startedAt.map(MillisecondDates.date), finishedAt: view.finishedAt.map(MillisecondDates.date),
            durationMs: view.durationMs.map(Int.init), waitingFor: view.waitingFor, stopReason: view.stopReason,
            cleanupFailed: view.cleanupFailed, steps: view.steps.map(Components.Schemas.Step.init)
        )
    }
}

extension Components.Schemas.Step {
    package init(_ view: StepView) {
        self.init(
            id: view.id, kind: view.kind, section: .init(rawValue: view.section) ?? .main, needs: view.needs,
            status: .init(rawValue: view.status) ?? .pending, worker: view.worker, startedAt: view.startedAt.map(MillisecondDates.date),
            attempt: view.attempt, waitingFor: view.waitingFor, skipReason: view.skipReason, lastError: view.lastError,
            approvals: view.approvals.map(ApprovalsPayload.init), attempts: view.attempts.map(Components.Schemas.Attempt.init)
        )
    }
}

extension Components.Schemas.Step.ApprovalsPayload {
    package init(_ view: ApprovalView) {
        self.init(
            required: view.required, approvedBy: view.approvedBy, state: view.state.flatMap(StatePayload.init(rawValue:)),
            deadline: view.deadline.map(MillisecondDates.date),
            decisions: view.decisions.map {
                DecisionsPayloadPayload(
                    decision: .init(rawValue: $0.decision) ?? .rejected, by: $0.by, comment: $0.comment, at: MillisecondDates.date($0.at)
                )
            }
        )
    }
}

extension Components.Schemas.Attempt {
    package init(_ view: AttemptView) {
        self.init(
            attempt: view.attempt, status: .init(rawValue: view.status) ?? .invalid, worker: view.worker,
            exitCode: view.exitCode.map(Int.init), error: view.error, startedAt: MillisecondDates.date(view.startedAt),
            finishedAt: MillisecondDates.date(view.finishedAt), durationMs: view.durationMs,
            outputs: JSONObjects.container(view.outputs), logSha256: view.logSHA256
        )
    }
}

extension RunView {
    package init(_ run: Components.Schemas.Run) {
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
    package init(_ step: Components.Schemas.Step) {
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
    package init(_ approvals: Components.Schemas.Step.ApprovalsPayload) {
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
    package init(_ attempt: Components.Schemas.Attempt) {
        self.init(
            attempt: attempt.attempt, status: attempt.status.rawValue, worker: attempt.worker,
            exitCode: attempt.exitCode.map(Int32.init(truncatingIfNeeded:)), error: attempt.error,
            startedAt: MillisecondDates.text(attempt.startedAt), finishedAt: MillisecondDates.text(attempt.finishedAt),
            durationMs: attempt.durationMs, outputs: JSONObjects.object(attempt.outputs), logSHA256: attempt.logSha256
        )
    }
}

/// Free-form JSON objects (a step's outputs, an environment's policy) between GantryCore's
/// `JSONValue` and the runtime's container, through their JSON text.
package enum JSONObjects {
    package static func container(_ object: [String: JSONValue]) -> OpenAPIObjectContainer {
        (try? JSONDecoder().decode(OpenAPIObjectContainer.self, from: Data(JSONValue.object(object).jsonText.utf8))) ?? .init()
    }

    package static func object(_ container: OpenAPIObjectContainer) -> [String: JSONValue] {
        guard let data = try? JSONEncoder().encode(container),
              case .object(let object)? = JSONValue.parse(String(decoding: data, as: UTF8.self))
        else { return [:] }
        return object
    }
}

/// The API's times (`2026-12-05T12:00:00.123Z`, milliseconds, UTC) read and written without
/// loss: Foundation's ISO 8601 formatter would turn .123 into .122 on the way back.
package struct MillisecondDates: DateTranscoder {
    package init() {}

    package func encode(_ date: Date) throws -> String { Self.text(date) }

    package func decode(_ text: String) throws -> Date {
        guard let ms = Timestamp.parseISO8601(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "'\(text.prefix(40))' is not an ISO 8601 time"))
        }
        return Date(timeIntervalSince1970: Double(ms) / 1_000)
    }

    package static func text(_ date: Date) -> String {
        Timestamp.iso8601(ms: Int64((date.timeIntervalSince1970 * 1_000).rounded()))
    }

    /// A time the dispatcher wrote (`Timestamp.iso8601`); the epoch for anything else.
    package static func date(_ text: String) -> Date {
        Date(timeIntervalSince1970: Double(Timestamp.parseISO8601(text) ?? 0) / 1_000)
    }
}
