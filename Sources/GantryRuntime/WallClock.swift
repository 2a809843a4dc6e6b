import Foundation

/// Wall-clock time as the ledger and the streams store it.
public enum WallClock {
    /// Microseconds since the Unix epoch.
    public static func nowUs() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec) / 1_000
    }

    /// Milliseconds since the Unix epoch.
    public static func nowMs() -> Int64 { nowUs() / 1_000 }
}
