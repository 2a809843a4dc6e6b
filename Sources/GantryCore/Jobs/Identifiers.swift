import Foundation

/// Shapes of the identifiers Gantry accepts from users and from the wire.
public enum Identifiers {
    /// A run id is a lowercase UUID (Gantry makes version 7, time-ordered, ones).
    public static func isValidRunID(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 36 else { return false }
        for (index, byte) in bytes.enumerated() {
            if index == 8 || index == 13 || index == 18 || index == 23 {
                guard byte == UInt8(ascii: "-") else { return false }
            } else {
                guard isLowerHex(byte) else { return false }
            }
        }
        return true
    }

    /// Step ids: 1-64 characters of `a-z 0-9 - _`, starting with a letter or digit.
    public static func isValidStepID(_ text: String) -> Bool {
        isName(text, maxLength: 64)
    }

    /// A commit as a run names it: 7 to 64 hexadecimal digits (an abbreviated or full SHA-1,
    /// or a SHA-256 object name). `plan`, `submit` and the API take the same.
    public static func isCommitSHA(_ text: String) -> Bool {
        (7...64).contains(text.utf8.count) && text.utf8.allSatisfy { Hex.isDigit($0) }
    }

    /// What `isCommitSHA` asks, for messages.
    public static let commitSHARule = "7 to 64 hexadecimal digits"

    /// Kind names: 1-32 characters of `a-z 0-9 - _`, starting with a letter or digit.
    public static func isValidKind(_ text: String) -> Bool {
        isName(text, maxLength: 32)
    }

    /// The queue of a kind in a worker pool: `build@production`; the default pool's is the kind
    /// itself. Steps of an environment with a `pool` go to its queues, and only workers started
    /// with `--pool` take them.
    public static func queueKind(_ kind: String, pool: String?) -> String {
        guard let pool, !pool.isEmpty, pool != "default" else { return kind }
        return kind + "@" + pool
    }

    /// The step kind of a queue kind (`build@production` → `build`).
    public static func baseKind(_ queueKind: String) -> String {
        guard let at = queueKind.utf8.firstIndex(of: UInt8(ascii: "@")) else { return queueKind }
        return String(queueKind[..<at])
    }

    /// A kind, or a kind in a pool: `kind` or `kind@pool` (the pool a safe name).
    public static func isValidQueueKind(_ text: String) -> Bool {
        let base = baseKind(text)
        guard isValidKind(base) else { return false }
        return base.utf8.count == text.utf8.count || SafeName.isValid(String(text.dropFirst(base.count + 1)))
    }

    /// Names of workers and dispatcher replicas (`--id`): 1-100 printable ASCII characters
    /// without spaces. They name Redis consumers and connections (`CLIENT SETNAME` refuses
    /// spaces and control characters) and the worker column of the ledger.
    public static func isValidProcessName(_ text: String) -> Bool {
        let bytes = text.utf8
        return (1...100).contains(bytes.count) && bytes.allSatisfy { (UInt8(ascii: "!")...UInt8(ascii: "~")).contains($0) }
    }

    /// A new run id: a UUID version 7 (48-bit millisecond timestamp, then random bits),
    /// so ids sort by creation time and index well.
    public static func newRunID(nowMs: Int64, using random: inout some RandomNumberGenerator) -> String {
        // Two random words instead of ten random bytes (each a call into the generator), and
        // no String(format:) per byte: that was two thirds of the CPU of an enqueue.
        let ts = UInt64(max(nowMs, 0)) & 0xFFFF_FFFF_FFFF
        let high = random.next(), low = random.next()
        // 48 bits of time, version 7, 12 random bits; variant 10, 62 random bits.
        let first = ts << 16 | 0x7000 | (high & 0x0FFF)
        let second = 0x8000_0000_0000_0000 | (low & 0x3FFF_FFFF_FFFF_FFFF)
        // Written straight into the string's storage: 32 lowercase hex digits, a dash before
        // digits 8, 12, 16 and 20 (8-4-4-4-12). Building bytes, hex text and inserting the dashes
        // was a twelfth of the CPU of an enqueue.
        return String(unsafeUninitializedCapacity: 36) { out in
            var at = 0
            for digit in 0..<32 {
                if digit == 8 || digit == 12 || digit == 16 || digit == 20 {
                    out[at] = UInt8(ascii: "-")
                    at += 1
                }
                let word = digit < 16 ? first : second
                let nibble = UInt8(truncatingIfNeeded: word >> UInt64((15 - digit % 16) * 4)) & 0x0F
                out[at] = nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
                at += 1
            }
            return at
        }
    }

    private static func isLowerHex(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
    }

    private static func isName(_ text: String, maxLength: Int) -> Bool {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= maxLength else { return false }
        for (index, byte) in bytes.enumerated() {
            let alnum = (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
            if index == 0 {
                guard alnum else { return false }
            } else {
                guard alnum || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") else { return false }
            }
        }
        return true
    }
}
