/// How long to wait before trying again something that failed: twice as long after each
/// failure, from `first` up to `cap`, reset by a success. Every retry loop of the worker and
/// the dispatcher waits through one, so that an outage costs each process a handful of tries
/// a second and not a busy loop, and the fleet does not come back in lockstep.
///
/// Each wait is drawn between half of the nominal delay and all of it ("equal jitter"): a
/// hundred workers that lost Redis at the same moment do not reconnect at the same moment.
public struct Backoff: Sendable {
    public let first: Duration
    public let cap: Duration
    /// Failures since the last success.
    public private(set) var failures = 0

    public init(first: Duration = .milliseconds(50), cap: Duration = .seconds(2)) {
        precondition(first > .zero && cap >= first, "a backoff starts above zero and its cap is at least its first wait")
        self.first = first
        self.cap = cap
    }

    /// Notes a failure and returns how long to wait before the next try.
    public mutating func failed() -> Duration {
        failures += 1
        // 2^(failures - 1) × first, without overflowing once the cap is reached.
        var nominal = first
        for _ in 1..<min(failures, 32) where nominal < cap { nominal *= 2 }
        nominal = min(nominal, cap)
        let half = nominal / 2
        let extra = Double.random(in: 0...1)
        return half + half * extra
    }

    /// Notes a failure and waits. Returns at once, without throwing, when the task is canceled.
    public mutating func wait() async {
        let delay = failed()
        try? await Task.sleep(for: delay)
    }

    /// Notes a success: the next failure waits `first` again.
    public mutating func succeeded() {
        failures = 0
    }
}
