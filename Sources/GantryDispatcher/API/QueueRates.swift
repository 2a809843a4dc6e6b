import Synchronization

/// How fast workers take each queue's entries: readings of Redis's count of entries delivered
/// to the workers' group, kept for a minute, taken every `interval` by the API's sampler
/// (`QueueRoutes.sample`) and whenever the queues are asked for. A rate needs two readings 5 s apart.
final class QueueRates: Sendable {
    private let samples = Mutex<[String: [(ms: Int64, taken: Int64)]]>([:])
    static let window: Int64 = 60_000
    static let interval: Duration = .seconds(5)

    /// Notes a reading and returns the rate per minute over the window, when there is one.
    @discardableResult
    func note(_ queue: String, taken: Int64, atMs now: Int64) -> Double? {
        samples.withLock { samples in
            var kept = (samples[queue] ?? []).filter { now - $0.ms <= Self.window }
            // A stream made again (Redis flushed) counts from zero: the older readings no longer compare.
            if let last = kept.last, taken < last.taken { kept.removeAll() }
            if kept.last.map({ now - $0.ms >= 1_000 }) ?? true { kept.append((now, taken)) }
            samples[queue] = kept
            guard let first = kept.first, now - first.ms >= 5_000 else { return nil }
            return Double(taken - first.taken) * 60_000 / Double(now - first.ms)
        }
    }
}
