import GantryCore
import GantryRedis
import Logging
import ServiceLifecycle
import Synchronization

/// Ships the lines running attempts write to their live log streams every 200 ms, with an
/// end marker once an attempt has ended (`gantry logs --follow`, the API's log tail). Best
/// effort: the ledger keeps the lasting excerpt. It stops after the runner has drained, with
/// one last pass.
struct LogShipper: Service {
    let state: WorkerState

    static let interval = Duration.milliseconds(200)

    func run() async throws {
        let streams = StepLogStream(keys: state.configuration.keys)
        while true {
            let last = Task.isShuttingDownGracefully || Task.isCancelled
            await ship(streams)
            if last { return }
            try? await Task.sleep(for: Self.interval)
        }
    }

    private func ship(_ streams: StepLogStream) async {
        let logs = state.liveLogs.all()
        var batches: [(key: AttemptKey, lines: [String], end: String?)] = []
        for (_, live) in logs {
            if live.log.isEmpty { continue }
            let lines = live.log.takeOutbox()
            if !lines.isEmpty || live.end != nil { batches.append((live.key, lines, live.end)) }
        }
        if !batches.isEmpty {
            do {
                try await streams.append(batches, on: state.writer)
            } catch {
                state.logger.debug("cannot ship step logs; they stay in the ledger excerpt", metadata: ["error": "\(error)"])
            }
        }
        state.liveLogs.forget(logs.filter { $0.value.end != nil }.map(\.key))
    }
}

/// The logs of running attempts (and of ended ones until their last lines are shipped), by delivery.
final class LiveLogs: Sendable {
    /// A running attempt's log on its way to Redis; `end` is set when the attempt ended.
    struct Entry: Sendable {
        let key: AttemptKey
        let log: StepLog
        var end: String?
    }

    private let logs = Mutex<[String: Entry]>([:])

    func begin(_ deliveryID: String, key: AttemptKey, log: StepLog) {
        logs.withLock { $0[deliveryID] = Entry(key: key, log: log) }
    }

    /// Marks the attempt's log ended with its status. A log nothing was written to ships
    /// nothing, not even its end: the shipper would only skip it for its last 200 ms (and
    /// its pass over every ended log was 3 % of a worker's CPU under load).
    func end(_ deliveryID: String, status: String, silent: Bool) {
        logs.withLock { logs in
            if silent { logs.removeValue(forKey: deliveryID) } else { logs[deliveryID]?.end = status }
        }
    }

    func all() -> [String: Entry] { logs.withLock { $0 } }

    func forget(_ deliveryIDs: [String]) {
        guard !deliveryIDs.isEmpty else { return }
        logs.withLock { logs in for id in deliveryIDs { logs.removeValue(forKey: id) } }
    }
}
