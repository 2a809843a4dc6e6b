import Foundation
import GantryCore
import Testing

@Suite struct JobTests {
    static let runID = "01a21db0-96c9-7db0-81f0-18363628c56a"

    func job(recovered: Bool = false) -> Job {
        Job(runID: Self.runID, stepID: "deploy-api", attempt: 2, kind: "noop", timeout: .seconds(30),
            inputs: #"{"sleep_ms":5}"#, enqueuedAtUs: 1_732_000_000_000_000, recovered: recovered)
    }

    @Test func fieldsRoundTrip() throws {
        for recovered in [false, true] {
            let original = job(recovered: recovered)
            #expect(try Job(fields: original.fields) == original)
        }
    }

    @Test(arguments: [
        ("v", "2", "v"), ("run", "not-a-uuid", "run"), ("run", "01A21DB0-96C9-7DB0-81F0-18363628C56A", "run"),
        ("step", "", "step"), ("step", "Deploy", "step"), ("step", String(repeating: "a", count: 65), "step"),
        ("attempt", "0", "attempt"), ("attempt", "two", "attempt"), ("kind", "no op", "kind"),
        ("timeout_ms", "0", "timeout_ms"), ("timeout_ms", "-1", "timeout_ms"), ("with", "[1,2]", "with"),
        ("with", "{not json", "with"), ("enq", "yesterday", "enq"),
    ])
    func aBadFieldIsNamed(field: String, value: String, named: String) {
        var fields = job().fields
        fields = fields.map { $0.0 == field ? ($0.0, value) : $0 }
        #expect(throws: JobDecodingError.self) { try Job(fields: fields) }
        do {
            _ = try Job(fields: fields)
        } catch {
            #expect(error.field == named)
            #expect(error.description.hasPrefix("job field '\(named)'"))
        }
    }

    @Test(arguments: ["v", "run", "step", "attempt", "kind", "timeout_ms", "with", "enq"])
    func aMissingFieldIsNamed(field: String) {
        let fields = job().fields.filter { $0.0 != field }
        do {
            _ = try Job(fields: fields)
            Issue.record("accepted a job without \(field)")
        } catch {
            #expect(error == JobDecodingError(field: field, problem: "is missing"))
        }
    }

    @Test func theCompactFormatRoundTripsAndIsTwoFieldPairs() throws {
        for recovered in [false, true] {
            var original = job(recovered: recovered)
            #expect(original.fields(.compact).map(\.0) == ["job", "with"])
            #expect(try Job(fields: original.fields(.compact)) == original)
            original.bindings = #"{"run.sha":"3f2a"}"#
            #expect(original.fields(.compact).map(\.0) == ["job", "with", "x"])
            #expect(try Job(fields: original.fields(.compact)) == original)
        }
        let header = job(recovered: true).fields(.compact)[0].1
        #expect(header == "\(Self.runID) deploy-api 2 noop 30000 rec 1732000000000000")
    }

    /// A bad word of the compact `job` field is named as the field it stands for.
    @Test(arguments: [
        (0, "not-a-uuid", "run"), (1, "Deploy", "step"), (2, "0", "attempt"), (2, "two", "attempt"),
        (3, "No-Op", "kind"), (4, "0", "timeout_ms"), (5, "recovered", "job"), (6, "yesterday", "enq"),
    ])
    func aBadCompactWordIsNamed(word: Int, value: String, named: String) {
        var words = job().fields(.compact)[0].1.split(separator: " ").map(String.init)
        words[word] = value
        do {
            _ = try Job(fields: [("job", words.joined(separator: " ")), ("with", "{}")])
            Issue.record("accepted \(words)")
        } catch {
            #expect(error.field == named)
        }
    }

    @Test func wordsSplitAtSingleSpacesAndKeepTheRestAfterTheLastSplit() {
        #expect("a b  c".spaceSeparatedWords() == ["a", "b", "", "c"])
        #expect("".spaceSeparatedWords() == [""])
        #expect("r s worker on host 7".spaceSeparatedWords(maxSplits: 2) == ["r", "s", "worker on host 7"])
        #expect("é ü".spaceSeparatedWords() == ["é", "ü"])
        #expect("a,b,,c".words(separatedBy: UInt8(ascii: ",")) == ["a", "b", "", "c"])
        #expect("a,b,c".words(separatedBy: UInt8(ascii: ","), maxSplits: 1) == ["a", "b,c"])
        #expect("no separator".words(separatedBy: UInt8(ascii: ",")) == ["no separator"])
    }

    @Test func aSubstringIsFoundByteForByteAnywhereAndOnlyWhole() {
        #expect(#"{"token":"${{ secrets.api }}"}"#.contains(utf8: "secrets."))
        #expect("secrets.".contains(utf8: "secrets."))
        #expect("xsecrets.".contains(utf8: "secrets."))
        #expect("ssecrets".contains(utf8: "secrets") && !"secret".contains(utf8: "secrets"))
        #expect(!"{}".contains(utf8: "secrets."))
        #expect(!"secrets".contains(utf8: "secrets."))
        #expect("anything".contains(utf8: "") && "".contains(utf8: ""))
        #expect(!"".contains(utf8: "a"))
        #expect("naïve café".contains(utf8: "é") && !"cafe".contains(utf8: "é"))
        // Bytes, not Characters: "e" + combining acute holds an "e" byte-wise.
        #expect("cafe\u{301}".contains(utf8: "cafe"))
    }

    @Test func aCompactJobWithTheWrongNumberOfWordsOrNoInputsIsRefused() {
        let header = job().fields(.compact)[0].1
        for text in ["", header + " extra", String(header.dropLast(17)), header.replacingOccurrences(of: " ", with: "  ")] {
            #expect(throws: JobDecodingError(field: "job", problem: "must be 7 words (run step attempt kind timeout_ms flags enqueued_us), not \(text.split(separator: " ", omittingEmptySubsequences: false).count)")) {
                try Job(fields: [("job", text), ("with", "{}")])
            }
        }
        #expect(throws: JobDecodingError(field: "with", problem: "is missing")) { try Job(fields: [("job", header)]) }
    }

    @Test func garbageIsRefusedNotCrashedOn() {
        let garbage: [[(String, String)]] = [
            [], [("hello", "world")], [("v", "1")], [("v", "\u{0}")], [("job", "\u{0}")], [("job", " "), ("with", "{}")],
        ]
        for fields in garbage {
            #expect(throws: JobDecodingError.self) { try Job(fields: fields) }
        }
    }

    @Test func runIDsAreTimeOrderedVersion7UUIDs() {
        var random = SeededRandom(seed: 5)
        var previous = ""
        for ms in stride(from: Int64(1_700_000_000_000), to: 1_700_000_010_000, by: 1_000) {
            let id = Identifiers.newRunID(nowMs: ms, using: &random)
            #expect(Identifiers.isValidRunID(id))
            #expect(Array(id)[14] == "7")
            #expect("89ab".contains(Array(id)[19]))
            #expect(id > previous)
            previous = id
        }
    }

    @Test func runIDsCarryTheirMillisecondAndParseAsUUIDs() throws {
        var random = SystemRandomNumberGenerator()
        let ms: Int64 = 0x0193_4A5B_6C7D
        var seen: Set<String> = []
        for _ in 0..<2_000 {
            let id = Identifiers.newRunID(nowMs: ms, using: &random)
            #expect(id.hasPrefix("01934a5b-6c7d-7"))
            #expect("89ab".contains(id[id.index(id.startIndex, offsetBy: 19)]), "variant 10 in \(id)")
            let uuid = try #require(UUID(uuidString: id))
            #expect(uuid.uuidString.lowercased() == id)
            seen.insert(id)
        }
        #expect(seen.count == 2_000)
    }

    /// A failed, non-retryable attempt of step `build` with error "exit N".
    func failedBuild(attempt: Int, worker: String, exit: Int32) -> AttemptResult {
        AttemptResult(
            key: AttemptKey(step: StepKey(runID: Self.runID, stepID: "build"), attempt: attempt), kind: "noop",
            status: .failed, worker: worker, exitCode: exit, error: "exit \(exit)", retryable: false,
            startedAtUs: 10, finishedAtUs: 20, deliveryID: "1-0"
        )
    }

    @Test func resultEventRoundTrips() {
        let result = failedBuild(attempt: 3, worker: "w1", exit: 2)
        let decoded = AttemptResult.outcomes(inEvent: result.eventFields)
        // Outputs and log stay in the ledger; events carry what the dispatcher decides on.
        #expect(decoded.malformed == 0)
        #expect(decoded.outcomes.map { var copy = $0; copy.outputs = result.outputs; return copy } == [result])
        #expect(AttemptResult(eventFields: [("type", "attempt")]) == nil)
        #expect(AttemptResult.outcomes(inEvent: [("type", "attempt")]).malformed == 1)
    }

    @Test func processNamesAreWhatRedisAcceptsAsClientNames() {
        for name in ["w1", "worker-build-7f3a", "dispatcher-ip-10-0-0-1.ec2.internal-412", "a@b:c/d", String(repeating: "x", count: 100)] {
            #expect(Identifiers.isValidProcessName(name), "\(name)")
        }
        for name in ["", "hand worker 1", "tab\there", "new\nline", "caf\u{e9}", "nul\u{0}", String(repeating: "x", count: 101)] {
            #expect(!Identifiers.isValidProcessName(name), "\(name)")
        }
    }

    @Test func resultEventsAreOneFieldAndKeepEveryValue() {
        // No exit code, no error; a worker name with spaces (it is the last word of the field).
        let succeeded = AttemptResult(
            key: AttemptKey(step: StepKey(runID: Self.runID, stepID: "deploy-web_1"), attempt: 1), kind: "smoke-test",
            status: .succeeded, worker: "worker on host a 7", startedAtUs: 1_764_000_000_000_001,
            finishedAtUs: 1_764_000_000_250_002, deliveryID: "1764000000000-17"
        )
        #expect(succeeded.eventFields.map(\.0) == ["r"])
        #expect(AttemptResult.outcomes(inEvent: succeeded.eventFields).outcomes == [succeeded])
        // A negative exit code and an error line with spaces, tabs and a newline: the error has a field of its own.
        var failed = succeeded
        failed.status = .timedOut
        failed.exitCode = -9
        failed.error = "killed after 2s:\tno output\nlast line"
        failed.retryable = false
        #expect(failed.eventFields.map(\.0) == ["r", "e"])
        #expect(AttemptResult.outcomes(inEvent: failed.eventFields).outcomes == [failed])

        // A worker's batch is one event: each error stays with its own outcome, in order.
        var other = succeeded
        other.key.attempt = 2
        let batch = succeeded.eventFields + failed.eventFields + other.eventFields
        #expect(batch.map(\.0) == ["r", "r", "e", "r"])
        #expect(AttemptResult.outcomes(inEvent: batch).outcomes == [succeeded, failed, other])
        // A malformed outcome, or a stray error line, is counted and the rest still apply.
        let damaged = succeeded.eventFields + [("r", "not words"), ("e", "its error")] + [("e", "stray")] + other.eventFields
        let decoded = AttemptResult.outcomes(inEvent: damaged)
        #expect(decoded.outcomes == [succeeded, other])
        #expect(decoded.malformed == 2)
    }

    @Test func oneOutcomeEventsOfTheReleaseBeforeStillDecode() {
        // Workers of the release before the batch form wrote one event per outcome, `result` and `error`.
        var failed = failedBuild(attempt: 2, worker: "w 1", exit: 3)
        let words = failed.eventFields[0].1
        #expect(AttemptResult.outcomes(inEvent: [("result", words), ("error", "exit 3")]).outcomes == [failed])
        failed.error = nil
        #expect(AttemptResult.outcomes(inEvent: [("result", words)]).outcomes == [failed])
    }

    @Test func resultEventsOfEarlierWorkersStillDecode() {
        // The twelve-field form workers wrote before the one-field form: events already in the
        // stream when the dispatcher is upgraded.
        let fields = [
            ("type", "attempt"), ("run", Self.runID), ("step", "build"), ("attempt", "2"), ("kind", "noop"),
            ("status", "failed"), ("worker", "w1"), ("retryable", "0"), ("started", "10"), ("finished", "20"),
            ("delivery", "1-0"), ("exit", "3"), ("error", "exit 3"),
        ]
        let expected = failedBuild(attempt: 2, worker: "w1", exit: 3)
        #expect(AttemptResult(eventFields: fields) == expected)
        #expect(AttemptResult.outcomes(inEvent: fields).outcomes == [expected])
    }

    @Test(arguments: [
        "",  // nothing
        "r s 1 noop succeeded 1 10 20 1-0 -",  // no worker
        "r s 1 noop succeeded 1 10 20 1-0 - ",  // an empty worker name
        "r s x noop succeeded 1 10 20 1-0 - w",  // attempt not a number
        "r s 1 noop finished 1 10 20 1-0 - w",  // not a status
        "r s 1 noop succeeded yes 10 20 1-0 - w",  // retryable neither 1 nor 0
        "r s 1 noop succeeded 1 ten 20 1-0 - w",  // start not a number
        "r s 1 noop succeeded 1 10 20 1-0 9999999999 w",  // exit code out of range
        "r  1 noop succeeded 1 10 20 1-0 - w",  // an empty step
        "r s 1 noop succeeded 1 10 20  - w",  // an empty delivery
    ])
    func malformedResultEventsAreRefused(_ text: String) {
        #expect(AttemptResult(eventFields: [("result", text)]) == nil)
        #expect(AttemptResult.outcomes(inEvent: [("r", text)]) == ([], 1))
    }
}
