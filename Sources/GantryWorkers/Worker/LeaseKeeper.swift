import Foundation
import GantryCore
import GantryRedis
import GantryRuntime
import Logging
import ServiceLifecycle
import Synchronization

/// Keeps the worker's leases and its place in the fleet: every third of the lease it renews
/// the lease of every delivery held (a lease found gone stops its attempt, recorded stale),
/// writes the worker's heartbeat (`FleetRegistry`) and trims what the last busy moments
/// acknowledged; between renewals it announces newly taken attempts within 100 ms, so that
/// the API shows a step running on this worker.
///
/// It is the first service to start and the last to stop: leases are renewed through a
/// drain until every outcome is acknowledged, and the worker leaves the fleet last.
struct LeaseKeeper: Service {
    let state: WorkerState
    let recorder: OutcomeRecorder
    private let fleet: FleetRegistry

    init(state: WorkerState, recorder: OutcomeRecorder) {
        self.state = state
        self.recorder = recorder
        self.fleet = FleetRegistry(keys: state.configuration.keys)
    }

    static let tick = Duration.milliseconds(100)

    func run() async throws {
        let interval = max(state.configuration.lease / 3, Self.tick)
        var next = ContinuousClock.now
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            if ContinuousClock.now >= next {
                next = ContinuousClock.now + interval
                await renewLeases()
                state.announceSoon.store(false, ordering: .relaxed)
                await announce()
                await trimLeftovers()
            } else if state.announceSoon.exchange(false, ordering: .relaxed) {
                await announce()
            }
            try? await Task.sleep(for: min(Self.tick, max(.zero, next - .now)))
        }
        // Every other service has stopped: nothing is held any more.
        do {
            try await fleet.remove(state.configuration.id, on: state.writer)
            // A worker started again under this name must not drain at once.
            try await FleetControl(keys: state.configuration.keys).drained(state.configuration.id, on: state.writer)
        } catch {
            state.logger.debug("cannot remove the worker from the fleet; its entry goes stale", metadata: ["error": "\(error)"])
        }
        state.logger.info("worker stopped")
    }

    private func renewLeases() async {
        let state = state
        for (kind, ids) in state.book.renewable() {
            do {
                let owned = try await state.queue.renew(kind: kind, consumer: state.configuration.id, ids: ids, on: state.heartbeat)
                let lost = state.book.markLost(asked: ids, owned: owned)
                state.metrics.leases(renewed: owned.count, lost: lost.count)
                guard !lost.isEmpty else { continue }
                for id in lost { state.control.stop(id, .leaseLost) }
                state.logger.warning("lost the lease on deliveries; stopping them", metadata: ["gantry.count": "\(lost.count)", "gantry.kind": "\(kind)"])
            } catch {
                state.logger.warning("cannot renew leases; retrying", metadata: ["error": "\(error)"])
            }
        }
    }

    private func announce() async {
        let configuration = state.configuration
        state.metrics.load(inFlight: state.slots.used, concurrency: configuration.concurrency)
        let heartbeat = WorkerHeartbeat(
            kinds: configuration.kinds, concurrency: configuration.concurrency, leaseMs: configuration.lease.milliseconds,
            jobs: JobFormat.allCases.max()!.rawValue, pid: getpid(), host: ProcessInfo.processInfo.hostName,
            version: GantryVersion.current, startedMs: state.startedMs, seenMs: WallClock.nowMs(), inFlight: state.slots.used,
            draining: state.draining.load(ordering: .sequentiallyConsistent), running: state.book.running(),
            paused: state.pauseApplied.withLock { $0.sorted() }
        )
        do { try await fleet.announce(configuration.id, heartbeat, on: state.heartbeat) } catch {
            state.logger.debug("cannot write the worker's heartbeat; retrying", metadata: ["error": "\(error)"])
        }
    }

    /// What the last busy moments acknowledged and did not trim yet.
    private func trimLeftovers() async {
        let leftovers = recorder.trimLeftovers()
        guard !leftovers.isEmpty else { return }
        do { try await state.queue.trim(kinds: leftovers, on: state.heartbeat) } catch {
            recorder.trimFailed(leftovers)
        }
    }
}
