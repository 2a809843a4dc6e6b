import GantryCore
import Testing

/// Each thing that can be wrong with a queue or a worker is named, with what to do; a healthy
/// one says nothing.
@Suite struct QueueHealthTests {
    static let now: Int64 = 1_800_000_000_000

    static func queue(
        _ name: String = "build", waiting: Int64 = 0, leased: Int64 = 0, delayed: Int = 0, dead: Int64 = 0, oldestAgoMs: Int64? = nil,
        unrenewed: Int = 0, live: Int = 1, draining: Int = 0, paused: Bool = false
    ) -> QueueFigures {
        QueueFigures(
            queue: name, waiting: waiting, leased: leased, delayed: delayed, dead: dead, oldestWaitingMs: oldestAgoMs.map { now - $0 },
            unrenewed: unrenewed, liveWorkers: live, drainingWorkers: draining, paused: paused
        )
    }

    static let table: [(QueueFigures, [String])] = [
        (queue(), []),
        (queue(waiting: 3, leased: 2, oldestAgoMs: 5_000), []),
        (queue(leased: 4, live: 0), []),
        (queue("build@production", waiting: 2, oldestAgoMs: 1_000, live: 0),
         ["no live worker takes build@production: 2 waiting; start one (gantry worker --kind build --pool production)"]),
        (queue(delayed: 1, live: 0), ["no live worker takes build: 0 waiting; start one (gantry worker --kind build)"]),
        (queue(waiting: 1, oldestAgoMs: 1_000, live: 2, draining: 2), ["every worker of build is draining: 1 waiting; start one that is not"]),
        (queue(waiting: 7, oldestAgoMs: 185_400, live: 3),
         ["oldest waiting step enqueued 3m5s ago with 3 live workers: they are full or stuck (gantry fleet)"]),
        (queue("deploy@staging", waiting: 2, oldestAgoMs: 500_000, live: 0, paused: true),
         ["paused: 2 waiting steps stay queued (gantry resume deploy --pool staging)"]),
        (queue(leased: 3, unrenewed: 2),
         ["2 leased steps not renewed for over 1m: their worker is gone and no dispatcher takes them back (is a dispatcher running?)"]),
        (queue(dead: 4), ["4 dead-lettered deliveries (gantry dlq list --kind build)"]),
        (queue(waiting: 1, dead: 1, oldestAgoMs: 1_000, live: 0).with(unrenewed: 1), [
            "no live worker takes build: 1 waiting; start one (gantry worker --kind build)",
            "1 leased steps not renewed for over 1m: their worker is gone and no dispatcher takes them back (is a dispatcher running?)",
            "1 dead-lettered deliveries (gantry dlq list --kind build)",
        ]),
    ]

    @Test(arguments: 0..<table.count)
    func eachProblemIsNamedWithWhatToDo(row: Int) {
        let (figures, expected) = Self.table[row]
        #expect(QueueHealth.problems(figures, nowMs: Self.now) == expected)
    }

    @Test func aWorkerIsNamedOnlyOnceItsHeartbeatIsOlderThanItsLease() {
        #expect(QueueHealth.problem(worker: "w", seenMs: Self.now - 2_000, leaseMs: 2_000, nowMs: Self.now) == nil)
        #expect(QueueHealth.problem(worker: "w", seenMs: 0, leaseMs: 2_000, nowMs: Self.now) == nil)
        #expect(QueueHealth.problem(worker: "w", seenMs: Self.now - 12_400, leaseMs: 2_000, nowMs: Self.now)
            == "heartbeat stopped 12s ago (lease 2s): its steps go to other workers once the lease is reclaimed")
    }

    @Test func aQueueNamesItsKindAndPool() {
        #expect(Self.queue("build@production").kind == "build" && Self.queue("build@production").pool == "production")
        #expect(Self.queue("noop").kind == "noop" && Self.queue("noop").pool == nil)
    }
}

private extension QueueFigures {
    func with(unrenewed: Int) -> QueueFigures {
        var copy = self
        copy.unrenewed = unrenewed
        return copy
    }
}
