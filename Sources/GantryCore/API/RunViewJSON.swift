/// JSON text of the API's views, written directly (keys sorted, like the
/// encoder with `.sortedKeys`): Foundation's `JSONEncoder` was a tenth of the
/// dispatcher's CPU while it served runs under load.
extension RunView {
    public var jsonText: String {
        var w = JSONObjectWriter()
        w.raw("cleanup_failed", cleanupFailed.map { JSONValue.array($0.map(JSONValue.string)).jsonText })
        w.field("created_at", createdAt)
        w.field("definition_sha256", definitionSHA256)
        w.field("duration_ms", durationMs)
        w.field("environment", environment)
        w.field("finished_at", finishedAt)
        w.field("id", id)
        w.field("phase", phase)
        w.field("pipeline", pipeline)
        w.field("ref", ref)
        w.field("sha", sha)
        w.field("started_at", startedAt)
        w.field("status", status)
        w.raw("steps", "[" + steps.map(\.jsonText).joined(separator: ",") + "]")
        w.field("stop_reason", stopReason)
        w.field("submitter", submitter)
        w.field("waiting_for", waitingFor)
        return w.finish()
    }
}

extension StepView {
    public var jsonText: String {
        var w = JSONObjectWriter()
        w.raw("approvals", approvals?.jsonText)
        w.field("attempt", Int64(attempt))
        w.raw("attempts", "[" + attempts.map(\.jsonText).joined(separator: ",") + "]")
        w.field("id", id)
        w.field("kind", kind)
        w.field("last_error", lastError)
        w.raw("needs", JSONValue.array(needs.map(JSONValue.string)).jsonText)
        w.field("section", section)
        w.field("skip_reason", skipReason)
        w.field("started_at", startedAt)
        w.field("status", status)
        w.field("waiting_for", waitingFor)
        w.field("worker", worker)
        return w.finish()
    }
}

extension ApprovalView {
    public var jsonText: String {
        var w = JSONObjectWriter()
        w.raw("approved_by", JSONValue.array(approvedBy.map(JSONValue.string)).jsonText)
        let decisions = decisions.map { decision -> String in
            var d = JSONObjectWriter()
            d.field("at", decision.at)
            d.field("by", decision.by)
            d.field("comment", decision.comment)
            d.field("decision", decision.decision)
            return d.finish()
        }
        w.raw("decisions", "[" + decisions.joined(separator: ",") + "]")
        w.field("deadline", deadline)
        w.field("required", Int64(required))
        w.field("state", state)
        return w.finish()
    }
}

extension AttemptView {
    public var jsonText: String {
        var w = JSONObjectWriter()
        w.field("attempt", Int64(attempt))
        w.raw("duration_ms", JSONValue.number(durationMs).jsonText)
        w.field("error", error)
        w.field("exit_code", exitCode.map(Int64.init))
        w.field("finished_at", finishedAt)
        w.field("log_sha256", logSHA256)
        w.raw("outputs", JSONValue.object(outputs).jsonText)
        w.field("started_at", startedAt)
        w.field("status", status)
        w.field("worker", worker)
        return w.finish()
    }
}

/// Appends `"key":value` pairs; nil values are left out, as the synthesized `Encodable` does.
struct JSONObjectWriter {
    private var out = "{"
    private var first = true

    private mutating func key(_ name: String) {
        if !first { out += "," }
        first = false
        JSONValue.writeString(name, to: &out)
        out += ":"
    }

    mutating func field(_ name: String, _ value: String?) {
        guard let value else { return }
        key(name)
        JSONValue.writeString(value, to: &out)
    }

    mutating func field(_ name: String, _ value: Int64?) {
        guard let value else { return }
        key(name)
        out += String(value)
    }

    mutating func raw(_ name: String, _ json: String?) {
        guard let json else { return }
        key(name)
        out += json
    }

    mutating func finish() -> String {
        out += "}"
        return out
    }
}
