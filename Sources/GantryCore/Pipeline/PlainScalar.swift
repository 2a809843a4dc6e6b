import Yams

/// How a plain (unquoted) YAML scalar of a Gantry file is typed: the YAML 1.2 core schema,
/// as GitHub Actions and Kubernetes read it. Yams' constructors follow YAML 1.1, where
/// anything with a colon is a base-60 number (`run: docker push registry/api:latest` became
/// 0) and `yes`, `no`, `on` and `off` are booleans; here only what looks like a number is
/// one, and only `true` and `false` are booleans. Quoted scalars are always text.
public enum PlainScalar {
    /// The scalar as JSON: null, a boolean, a number or text (an empty value stays empty text).
    public static func value(_ scalar: Node.Scalar) -> JSONValue {
        guard scalar.style == .plain else { return .string(scalar.string) }
        let text = scalar.string
        if isNull(text) { return .null }
        if let bool = bool(text) { return .bool(bool) }
        if let number = number(text) { return .number(number) }
        return .string(text)
    }

    /// `true` or `false` (also `True`, `TRUE`, `False`, `FALSE`), else nil.
    public static func bool(_ text: String) -> Bool? {
        switch text {
        case "true", "True", "TRUE": true
        case "false", "False", "FALSE": false
        default: nil
        }
    }

    /// A plain scalar's boolean, nil for a quoted one or other text.
    public static func bool(_ scalar: Node.Scalar) -> Bool? {
        scalar.style == .plain ? bool(scalar.string) : nil
    }

    static func isNull(_ text: String) -> Bool {
        text == "null" || text == "Null" || text == "NULL" || text == "~"
    }

    /// A decimal integer or float (`-12`, `3.5`, `1e3`, `0x1F`, `0o17`), else nil.
    public static func number(_ text: String) -> Double? {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else { return nil }
        if bytes.count > 2, bytes[0] == UInt8(ascii: "0") {
            let digits = String(text.dropFirst(2))
            switch bytes[1] {
            case UInt8(ascii: "x"): return UInt64(digits, radix: 16).map { Double($0) }
            case UInt8(ascii: "o"): return UInt64(digits, radix: 8).map { Double($0) }
            default: break
            }
        }
        var index = 0
        if bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+") { index += 1 }
        var digits = 0
        while index < bytes.count, isDigit(bytes[index]) { index += 1; digits += 1 }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            while index < bytes.count, isDigit(bytes[index]) { index += 1; digits += 1 }
        }
        guard digits > 0 else { return nil }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+") { index += 1 }
            var exponent = 0
            while index < bytes.count, isDigit(bytes[index]) { index += 1; exponent += 1 }
            guard exponent > 0 else { return nil }
        }
        guard index == bytes.count, let value = Double(text), value.isFinite else { return nil }
        return value
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }
}
