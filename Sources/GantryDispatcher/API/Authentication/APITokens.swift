import Crypto
import Foundation
import GantryCore

/// API tokens: generated with 256 random bits, stored only as their SHA-256.
public enum APITokens {
    /// A new token: `gty_` and 43 base64url characters.
    public static func generate() -> String {
        var random = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) }
        let text = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        return "gty_" + text
    }

    /// SHA-256 of the token, hex: what the tokens table keeps.
    public static func hash(_ token: String) -> String { sha256Hex(token) }

    /// SHA-256 of a text's UTF-8 bytes, hex (tokens, stored pipeline definitions).
    public static func sha256Hex(_ text: String) -> String {
        Hex.encode(SHA256.hash(data: Data(text.utf8)))
    }
}
