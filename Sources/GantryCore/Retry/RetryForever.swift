import Logging

/// Runs `body` until it succeeds, backing off quadratically up to 2 s, for the
/// places that must not give up while Redis or Postgres is away (recording an
/// outcome, acknowledging it, applying it). Logs the first failure only, so an
/// outage is one line, not thousands.
///
/// - Parameter giveUp: checked after each failure; returning true ends the loop
///   (the process is being torn down).
public func retryUntilSuccess<E: Error>(
    _ what: @autoclosure () -> String,
    logger: Logger,
    giveUp: () -> Bool = { Task.isCancelled },
    _ body: () async throws(E) -> Void
) async {
    var attempts = 0
    while true {
        do {
            try await body()
            if attempts > 0 { logger.info("recovered: \(what()) succeeded after \(attempts) retries") }
            return
        } catch {
            attempts += 1
            if attempts == 1 { logger.warning("cannot \(what()); retrying", metadata: ["error": "\(error)"]) }
            if giveUp() { return }
            try? await Task.sleep(for: .milliseconds(min(2_000, 50 * attempts * attempts)))
        }
    }
}
