import Crypto
import Foundation
import GantryCore

/// How `notify` signs webhook deliveries, and how a receiver checks them.
///
/// Headers: `X-Gantry-Delivery` (`run/step/attempt`: the same for every HTTP try of one
/// delivery, for de-duplication), `X-Gantry-Timestamp` (Unix seconds when this try was sent,
/// fresh for each) and `X-Gantry-Signature: sha256=<hex>`, the HMAC-SHA256 with the shared
/// secret of `delivery + "." + timestamp + "." + body` (the raw body bytes as received). A
/// receiver recomputes it, compares in constant time, refuses a timestamp more than a few
/// minutes from its clock (no replay later) and a delivery id it already handled (no replay
/// within those minutes; the id cannot be changed without breaking the signature).
/// (docs/step-kinds.md shows the same check in a few lines of Python.)
public enum WebhookSignature {
    public static func sign(body: String, timestamp: String, delivery: String, secret: String) -> String {
        let signed = delivery + "." + timestamp + "." + body
        let code = HMAC<SHA256>.authenticationCode(for: Data(signed.utf8), using: SymmetricKey(data: Data(secret.utf8)))
        return "sha256=" + Hex.encode(code)
    }

    /// Whether a delivery is authentic and fresh: the signature matches and the
    /// timestamp is within `tolerance` of `now`.
    public static func verify(
        body: String, timestamp: String, delivery: String, signature: String, secret: String, now: Date, tolerance: TimeInterval = 300
    ) -> Bool {
        guard let seconds = Double(timestamp), abs(now.timeIntervalSince1970 - seconds) <= tolerance else { return false }
        let expected = Array(sign(body: body, timestamp: timestamp, delivery: delivery, secret: secret).utf8)
        let given = Array(signature.utf8)
        guard expected.count == given.count else { return false }
        // Constant time: every byte is compared whatever the first difference.
        return zip(expected, given).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
