import GantryAPI
import GantryCore
import GantryRedis
import GantryRuntime

/// `GET /v1/queues` (every queue's figures and problems) and `POST /v1/queues/{queue}/pause`
/// and `/resume`, for operators.
struct QueueRoutes: Sendable {
    let redis: RedisConnection
    let keys: QueueKeys
    let audit: ActionAudit
    let rates: QueueRates
    let metrics = DispatcherMetrics()

    func list(_ input: Operations.ListQueues.Input) async throws -> Operations.ListQueues.Output {
        let grant = try APICaller.grant()
        try await audit.authorize(grant, .observe, environment: nil, runID: nil, log: "queues")
        let now = WallClock.nowMs()
        return .ok(.init(body: .json(.init(queues: try await queues(nowMs: now), checkedAt: FleetRoutes.date(now)))))
    }

    func pause(_ input: Operations.PauseQueue.Input) async throws -> Operations.PauseQueue.Output {
        let grant = try APICaller.grant()
        var reason: String?
        if case .json(let body)? = input.body { reason = body.reason }
        let queue = try await known(input.path.queue, grant: grant, action: "pause")
        let now = WallClock.nowMs()
        let control = FleetControl(keys: keys)
        guard try await control.pause(queue, .init(by: grant.name, atMs: now, reason: reason), on: redis) else {
            let by = try await control.paused(on: redis)[queue]
            try await refuse(.conflict("queue \(queue) is already paused\(by.map { " (by \($0.by) at \(Timestamp.iso8601(ms: $0.atMs)))" } ?? "")"),
                             grant: grant, action: "pause", queue: queue)
        }
        try await audit.record(actor: grant.name, "pause", runID: nil, environment: nil, accepted: true,
                               reason: "queue \(queue)" + (reason.map { ": \($0)" } ?? ""))
        return .ok(.init(body: .json(try await figures(of: queue, nowMs: now))))
    }

    func resume(_ input: Operations.ResumeQueue.Input) async throws -> Operations.ResumeQueue.Output {
        let grant = try APICaller.grant()
        let queue = try await known(input.path.queue, grant: grant, action: "resume")
        guard try await FleetControl(keys: keys).resume(queue, on: redis) else {
            try await refuse(.conflict("queue \(queue) is not paused"), grant: grant, action: "resume", queue: queue)
        }
        try await audit.record(actor: grant.name, "resume", runID: nil, environment: nil, accepted: true, reason: "queue \(queue)")
        return .ok(.init(body: .json(try await figures(of: queue, nowMs: WallClock.nowMs()))))
    }

    /// The operator's right, then a queue of a kind this installation runs (`kind` or `kind@pool`).
    private func known(_ queue: String, grant: Grant, action: String) async throws -> String {
        try await audit.authorize(grant, .operate, environment: nil, runID: nil, log: action)
        let kinds = PipelineParser.standardKinds.subtracting(["approval"]).sorted()
        let base = Identifiers.baseKind(queue)
        guard Identifiers.isValidQueueKind(queue), kinds.contains(base) else {
            try await refuse(.badRequest(
                "queue '\(queue.prefix(80))' is not a step kind\(Suggestion.hint(for: base, in: kinds)) Kinds: \(kinds.joined(separator: ", ")); a pool's queue is KIND@POOL"
            ), grant: grant, action: action, queue: String(queue.prefix(80)))
        }
        return queue
    }

    private func refuse(_ error: APIError, grant: Grant, action: String, queue: String) async throws -> Never {
        try? await audit.record(actor: grant.name, action, runID: nil, environment: nil, accepted: false, reason: "queue \(queue): \(error.message)")
        throw error
    }

    /// Reads every queue each `QueueRates.interval` (the rates' readings and the queues' gauges
    /// for `/metrics`) until the task is cancelled.
    func sample() async {
        while !Task.isCancelled {
            let now = WallClock.nowMs()
            if let queues = try? await queues(nowMs: now) {
                for queue in queues {
                    metrics.queue(
                        queue.queue, waiting: Int64(queue.waiting), leased: Int64(queue.leased), delayed: queue.delayed, dead: Int64(queue.dead),
                        oldestWaitingSeconds: Double(queue.oldestWaitingAgeMs ?? 0) / 1_000, liveWorkers: queue.liveWorkers, paused: queue.paused
                    )
                }
            } else {
                metrics.redisError()
            }
            try? await Task.sleep(for: QueueRates.interval)
        }
    }

    /// Every queue with a stream, dead letters, delayed retries, a pause or a worker.
    private func queues(nowMs: Int64) async throws -> [Components.Schemas.Queue] {
        let inspector = QueueInspector(keys: keys)
        let readings = Dictionary(uniqueKeysWithValues: try await inspector.read(on: redis).map { ($0.queue, $0) })
        let delayed = try await inspector.delayed(on: redis)
        let paused = try await FleetControl(keys: keys).paused(on: redis)
        let live = try await FleetRegistry(keys: keys).live(nowMs: nowMs, on: redis)
        var names = Set(readings.keys).union(delayed.keys).union(paused.keys)
        for heartbeat in live.values { names.formUnion(heartbeat.kinds) }
        var queues: [Components.Schemas.Queue] = []
        for name in names.sorted() {
            let reading = try await readings[name].asyncOr { try await inspector.read(name, on: redis) }
            queues.append(view(reading, delayed: delayed[name] ?? 0, pause: paused[name], live: live, nowMs: nowMs))
        }
        return queues
    }

    private func figures(of queue: String, nowMs: Int64) async throws -> Components.Schemas.Queue {
        let inspector = QueueInspector(keys: keys)
        return view(
            try await inspector.read(queue, on: redis), delayed: try await inspector.delayed(on: redis)[queue] ?? 0,
            pause: try await FleetControl(keys: keys).paused(on: redis)[queue],
            live: try await FleetRegistry(keys: keys).live(nowMs: nowMs, on: redis), nowMs: nowMs
        )
    }

    private func view(
        _ reading: QueueInspector.Reading, delayed: Int, pause: FleetControl.Request?, live: [String: WorkerHeartbeat], nowMs: Int64
    ) -> Components.Schemas.Queue {
        let takers = live.values.filter { $0.kinds.contains(reading.queue) }
        let rate = reading.taken.flatMap { rates.note(reading.queue, taken: $0, atMs: nowMs) }
        let figures = QueueFigures(
            queue: reading.queue, waiting: reading.waiting, leased: reading.leased, delayed: delayed, dead: reading.dead,
            oldestWaitingMs: reading.oldestWaitingMs, unrenewed: reading.unrenewed,
            liveWorkers: takers.count, drainingWorkers: takers.filter(\.draining).count, paused: pause != nil
        )
        return .init(
            queue: figures.queue, kind: figures.kind, pool: figures.pool, waiting: Int(figures.waiting), leased: Int(figures.leased),
            delayed: figures.delayed, dead: Int(figures.dead),
            oldestWaitingAgeMs: figures.oldestWaitingMs.map { Int(max(0, nowMs - $0)) }, unrenewed: figures.unrenewed,
            takenPerMinute: rate, liveWorkers: figures.liveWorkers, drainingWorkers: figures.drainingWorkers, paused: figures.paused,
            pausedBy: pause?.by, pausedAt: pause.map { FleetRoutes.date($0.atMs) }, pauseReason: pause?.reason,
            problems: QueueHealth.problems(figures, nowMs: nowMs)
        )
    }
}

private extension Optional {
    /// The value, or what `fallback` makes when there is none.
    func asyncOr(_ fallback: () async throws -> Wrapped) async throws -> Wrapped {
        if let self { return self }
        return try await fallback()
    }
}
