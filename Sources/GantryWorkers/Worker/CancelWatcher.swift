import GantryCore
import GantryRedis
import Logging
import ServiceLifecycle

/// Stops the attempts users cancel: polls the cancel list twice a second from the latest
/// score seen (cheap whatever the job rate) and stops the held attempts it names. The reader
/// notes the list too, as it comes back with each read of deliveries, so that an attempt
/// canceled while it waited is recorded `canceled` without running.
struct CancelWatcher: Service {
    let state: WorkerState

    static let interval = Duration.milliseconds(500)
    /// Cancels are re-read at the latest score; this long of them is kept to recognise repeats.
    static let memory = Duration.seconds(3_600)

    func run() async throws {
        let state = state
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                Self.note(try await state.cancels.since(ms: state.book.cancelsReadUpToMs, on: state.heartbeat), state)
            } catch {
                state.logger.debug("cannot read the cancel list; retrying", metadata: ["error": "\(error)"])
            }
            state.book.forgetCancels(olderThan: Self.memory)
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: Self.interval) }
        }
    }

    /// Notes cancels read from the list and stops the running attempts they name.
    static func note(_ cancels: (members: [String], latestMs: Int64), _ state: WorkerState) {
        for id in state.book.note(cancels: cancels.members, latestMs: cancels.latestMs) {
            state.control.stop(id, .canceled)
        }
    }
}
