import GantryCore
import Logging
import ServiceLifecycle

/// The dispatcher: it applies attempt outcomes to runs (through the pure `RunMachine`),
/// moves due retries into their streams, reclaims expired leases, fires deadlines, withdraws
/// canceled attempts no worker took, re-enqueues from Postgres what Redis lost, and — with
/// `--listen` — serves the HTTP API.
///
/// Each of those jobs is a service in the process's `ServiceGroup` (see `services`), sharing
/// one `DispatcherState`. None keeps state between passes: every decision is taken under the
/// step's row lock in Postgres, so several replicas may run at once.
public struct Dispatcher: Sendable {
    public let configuration: DispatcherConfiguration
    private let state: DispatcherState

    public init(configuration: DispatcherConfiguration, logger: Logger) {
        var logger = logger
        logger[metadataKey: "gantry.dispatcher"] = "\(configuration.id)"
        self.configuration = configuration
        self.state = DispatcherState(configuration: configuration, logger: logger)
    }

    /// The replica's services in start order; a graceful shutdown stops them in reverse: the
    /// API first (no new submits), then the lanes applying outcomes, then the passes.
    ///
    /// A service that ends or fails ends the replica (the group's default): an API whose
    /// address is taken must not leave a dispatcher running that looks healthy and answers nothing.
    public var services: [ServiceGroupConfiguration.ServiceConfiguration] {
        var services: [any Service] = [
            Reconciler(state: state),
            LeaseReaper(state: state),
            CancelWithdrawer(state: state),
            DeadlineFirer(state: state),
            RetryScheduler(state: state),
        ]
        services += (0..<configuration.lanes).map { EventApplier(state: state, lane: $0) }
        if let api = configuration.api {
            services.append(APIServer(configuration: api, dispatcher: configuration, effector: state.effector, logger: state.logger))
        }
        return services.map { .init(service: $0) }
    }

    /// Logs that the replica runs (the command calls it when its group starts).
    public func logStarted() {
        state.logger.info("dispatcher started", metadata: ["gantry.lanes": "\(configuration.lanes)"])
    }

    /// Logs that the replica stopped.
    public func logStopped() {
        state.logger.info("dispatcher stopped")
    }
}

extension APIServer: Service {}
