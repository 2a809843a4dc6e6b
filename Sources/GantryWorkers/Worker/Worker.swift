import GantryCore
import Logging
import ServiceLifecycle

/// A worker process: takes attempts of its kinds from Redis, runs them, records each
/// outcome in Postgres and only then acknowledges it.
///
/// It is seven services sharing one `WorkerState` (the book of held deliveries, the slots, the
/// mailbox of finished attempts), run in the process's `ServiceGroup` in this order:
///
/// - `LeaseKeeper`: renews the leases of held deliveries, writes the heartbeat;
/// - `LogShipper`: ships live step logs;
/// - `CancelWatcher`: stops the attempts users cancel;
/// - `ControlWatcher`: leaves paused queues unread, and drains the worker when an operator asks;
/// - `OutcomeRecorder`: group-commits outcomes, then publishes and acknowledges them;
/// - `AttemptRunner`: runs attempts, stops them at their deadline;
/// - `DeliveryReader`: takes deliveries while slots are free.
///
/// A graceful shutdown (SIGTERM) stops them in reverse, each once the one after it has
/// ended: reading stops, in-flight attempts get `drainGrace` to finish and the rest are
/// recorded `interrupted` (re-delivered at once by the dispatcher), every outcome is
/// recorded and acknowledged, the last log lines shipped, and the worker leaves the fleet.
public struct Worker: Sendable {
    public let configuration: WorkerConfiguration
    private let state: WorkerState

    /// - Throws: `WorkerError` when a kind has no executor in `registry`.
    public init(configuration: WorkerConfiguration, registry: ExecutorRegistry, logger: Logger) throws {
        for kind in configuration.kinds where registry.executor(for: Identifiers.baseKind(kind)) == nil {
            throw WorkerError("no executor for kind '\(kind)'; known kinds: \(registry.kinds.joined(separator: ", "))")
        }
        var logger = logger
        logger[metadataKey: "gantry.worker"] = "\(configuration.id)"
        self.configuration = configuration
        self.state = WorkerState(configuration: configuration, registry: registry, logger: logger)
    }

    /// The worker's services, in start order (they stop in reverse).
    public var services: [ServiceGroupConfiguration.ServiceConfiguration] {
        let recorder = OutcomeRecorder(state: state)
        let runner = AttemptRunner(state: state)
        let services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: LeaseKeeper(state: state, recorder: recorder)),
            .init(service: LogShipper(state: state)),
            .init(service: CancelWatcher(state: state)),
            // Its end (an operator's drain) shuts the group down gracefully, as SIGTERM does.
            .init(service: ControlWatcher(state: state), successTerminationBehavior: .gracefullyShutdownGroup),
            .init(service: recorder),
            .init(service: runner),
            .init(service: DeliveryReader(state: state, runner: runner)),
        ]
        return services
    }
}

/// A one-line error about how the worker was started.
public struct WorkerError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
