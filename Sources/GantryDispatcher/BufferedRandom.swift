#if canImport(Glibc)
import Glibc
#endif

/// The system's random generator, drawn 256 bytes at a time. A run id takes two random words,
/// and `SystemRandomNumberGenerator` makes a system call for each: that was a tenth of the CPU
/// of enqueueing one-step runs. Same source (`getentropy`, the kernel's generator), 32 words a call.
struct BufferedSystemRandom: RandomNumberGenerator {
    /// `getentropy` gives at most 256 bytes per call.
    private var words = [UInt64](repeating: 0, count: 32)
    private var used = 32
    private var fallback = SystemRandomNumberGenerator()

    mutating func next() -> UInt64 {
        if used == words.count {
            guard refill() else { return fallback.next() }
        }
        defer { used += 1 }
        return words[used]
    }

    /// Fills the buffer; false when the system cannot (the caller then draws word by word).
    private mutating func refill() -> Bool {
        #if canImport(Glibc)
        let filled = words.withUnsafeMutableBytes { bytes in getentropy(bytes.baseAddress!, bytes.count) == 0 }
        if filled { used = 0 }
        return filled
        #else
        return false
        #endif
    }
}
