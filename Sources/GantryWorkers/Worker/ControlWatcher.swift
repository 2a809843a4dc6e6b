import GantryCore
import GantryRedis
import Logging
import ServiceLifecycle
import Synchronization

/// Follows what operators ask of this worker (`gantry pause`, `gantry resume`, `gantry drain`):
/// twice a second it reads which of its queues are paused, for the reader to leave them unread,
/// and whether it was asked to drain. A drain ends this service, and the group it runs in
/// (`successTerminationBehavior: .gracefullyShutdownGroup`) drains as on SIGTERM.
struct ControlWatcher: Service {
    let state: WorkerState

    static let interval = Duration.milliseconds(500)

    func run() async throws {
        let state = state, control = FleetControl(keys: state.configuration.keys)
        let queues = state.configuration.kinds, worker = state.configuration.id
        var failing = false
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let (paused, drain) = try await control.instructions(worker: worker, queues: queues, on: state.heartbeat)
                failing = false
                let before = state.paused.withLock { current in
                    defer { current = paused }
                    return current
                }
                for queue in paused.subtracting(before).sorted() {
                    state.logger.info("queue paused: finishing what is held, taking no new steps of it", metadata: ["gantry.queue": "\(queue)"])
                }
                for queue in before.subtracting(paused).sorted() {
                    state.logger.info("queue resumed", metadata: ["gantry.queue": "\(queue)"])
                }
                if drain {
                    state.logger.info("drain requested by an operator: finishing what is held, then stopping")
                    return
                }
            } catch {
                // Paused queues stay as last read while Redis is away.
                if !failing { state.logger.debug("cannot read operators' instructions; retrying", metadata: ["error": "\(error)"]) }
                failing = true
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: Self.interval) }
        }
    }
}
