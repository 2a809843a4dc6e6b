import Logging

/// Runs `body` until it succeeds, waiting through a `Backoff` (50 ms doubling up to 2 s),
/// for the places that must not give up while Redis or Postgres is away (recording an
/// outcome, acknowledging it, applying it). Logs the first failure only, so an outage is
/// one line, not thousands, and the recovery another.
///
/// - Parameter giveUp: checked after each failure; returning true ends the loop
///   (the process is being torn down).
public func retryUntilSuccess<E: Error>(
    _ what: @autoclosure () -> String,
    logger: Logger,
    backoff: Backoff = Backoff(),
    giveUp: () -> Bool = { Task.isCancelled },
    _ body: () async throws(E) -> Void
) async {
    var backoff = backoff
    while true {
        do {
            try await body()
            if backoff.failures > 0 { logger.info("recovered: \(what()) succeeded after \(backoff.failures) retries") }
            return
        } catch {
            if backoff.failures == 0 { logger.warning("cannot \(what()); retrying", metadata: ["error": "\(error)"]) }
            if giveUp() { return }
            await backoff.wait()
        }
    }
}
