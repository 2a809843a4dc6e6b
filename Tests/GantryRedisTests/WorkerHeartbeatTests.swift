import Foundation
import GantryCore
import GantryRedis
import Testing

/// The heartbeat is read by dispatchers and API replicas of other releases during an
/// upgrade: what earlier workers wrote must still read, with defaults for what they left out.
@Suite struct WorkerHeartbeatTests {
    @Test func aHeartbeatRoundTripsWithRunningAttemptsAsPairs() throws {
        let heartbeat = WorkerHeartbeat(
            kinds: ["noop", "build@production"], concurrency: 8, leaseMs: 30_000, jobs: 2, pid: 4_242, host: "vm", version: "0.11.0",
            startedMs: 1_000, seenMs: 2_000, inFlight: 2, draining: false,
            running: [RunningAttempt(attempt: "r2/s/1", sinceMs: 1_500), RunningAttempt(attempt: "r1/s/1", sinceMs: 1_200)]
        )
        let json = try JSONEncoder().encode(heartbeat)
        let object = try #require(JSONValue.parseObject(String(decoding: json, as: UTF8.self)))
        // The wire format every release reads: snake_case keys, attempts as [name, since] pairs, oldest first.
        #expect(object["lease_ms"]?.intValue == 30_000 && object["seen_ms"]?.intValue == 2_000 && object["in_flight"]?.intValue == 2)
        guard case .array(let running)? = object["running"], case .array(let first)? = running.first else {
            Issue.record("running is not a list of pairs: \(object)")
            return
        }
        #expect(first.first?.stringValue == "r1/s/1" && first.last?.intValue == 1_200)
        #expect(try JSONDecoder().decode(WorkerHeartbeat.self, from: json) == heartbeat)
    }

    @Test func anEarlierWorkersHeartbeatReadsWithDefaults() throws {
        // What a worker of the first releases wrote: no job format, no version, no running list.
        let old = #"{"kinds":["noop"],"concurrency":64,"lease_ms":30000,"pid":7,"seen_ms":5000,"in_flight":0}"#
        let heartbeat = try JSONDecoder().decode(WorkerHeartbeat.self, from: Data(old.utf8))
        #expect(heartbeat.kinds == ["noop"] && heartbeat.leaseMs == 30_000 && heartbeat.seenMs == 5_000)
        #expect(heartbeat.jobs == JobFormat.fields.rawValue && heartbeat.version == "" && heartbeat.running.isEmpty && !heartbeat.draining)
    }

    @Test func aWorkerIsLiveWithinItsLeaseOnly() throws {
        let heartbeat = try JSONDecoder().decode(WorkerHeartbeat.self, from: Data(#"{"lease_ms":1000,"seen_ms":10000}"#.utf8))
        #expect(heartbeat.isLive(nowMs: 10_500))
        #expect(heartbeat.isLive(nowMs: 11_000))
        #expect(!heartbeat.isLive(nowMs: 11_001))
        // An entry that never said when it was seen is never live.
        #expect(try !JSONDecoder().decode(WorkerHeartbeat.self, from: Data("{}".utf8)).isLive(nowMs: 0))
    }

    @Test func theRunningListIsCappedOldestFirst() {
        let many = (0..<(WorkerHeartbeat.maxRunning + 50)).reversed().map { RunningAttempt(attempt: "r/s/\($0)", sinceMs: Int64($0)) }
        let heartbeat = WorkerHeartbeat(
            kinds: ["noop"], concurrency: 1, leaseMs: 1, jobs: 2, pid: 1, host: "h", version: "v",
            startedMs: 0, seenMs: 0, inFlight: many.count, draining: true, running: many
        )
        #expect(heartbeat.running.count == WorkerHeartbeat.maxRunning)
        #expect(heartbeat.running.first?.sinceMs == 0 && heartbeat.running.last?.sinceMs == Int64(WorkerHeartbeat.maxRunning - 1))
    }
}
