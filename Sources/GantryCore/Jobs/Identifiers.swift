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

    /// Kind names: 1-32 characters of `a-z 0-9 - _`, starting with a letter or digit.
    public static func isValidKind(_ text: String) -> Bool {
        isName(text, maxLength: 32)
    }

    /// A new run id: a UUID version 7 (48-bit millisecond timestamp, then random bits),
    /// so ids sort by creation time and index well.
    public static func newRunID(nowMs: Int64, using random: inout some RandomNumberGenerator) -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        let ts = UInt64(max(nowMs, 0))
        for i in 0..<6 { bytes[i] = UInt8(truncatingIfNeeded: ts >> (40 - 8 * UInt64(i))) }
        for i in 6..<16 { bytes[i] = UInt8.random(in: 0...255, using: &random) }
        bytes[6] = (bytes[6] & 0x0F) | 0x70
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        let chars = Array(hex)
        return String(chars[0..<8]) + "-" + String(chars[8..<12]) + "-" + String(chars[12..<16]) + "-"
            + String(chars[16..<20]) + "-" + String(chars[20..<32])
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
