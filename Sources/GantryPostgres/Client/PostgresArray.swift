/// Text literals of Postgres arrays, so a batch of rows travels as a few array
/// parameters (`unnest($1::uuid[], $2::text[] …)`) instead of thousands of `$n`.
enum PostgresArray {
    /// `{"a","b",NULL}` with `"` and `\` escaped. Built byte by byte: it runs for
    /// every column of every batch on the hot path (it was a tenth of a worker's CPU
    /// when built from Unicode scalars).
    static func literal(_ values: [String?]) -> String {
        let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
        var out: [UInt8] = []
        out.reserveCapacity(2 + values.count * 24)
        out.append(UInt8(ascii: "{"))
        for (index, value) in values.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            guard let value else {
                out.append(contentsOf: "NULL".utf8)
                continue
            }
            out.append(quote)
            for byte in value.utf8 {
                if byte == quote || byte == backslash { out.append(backslash) }
                out.append(byte)
            }
            out.append(quote)
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    static func literal(_ values: [String]) -> String {
        literal(values.map { Optional($0) })
    }

    static func literal<T: BinaryInteger>(_ values: [T?]) -> String {
        literal(values.map { $0.map { String($0) } })
    }
}

extension PostgresArray {
    /// Parses a one-dimensional array in Postgres's text output (`{a,"b c",NULL}`);
    /// NULL elements are dropped.
    static func parse(_ text: String) -> [String] {
        let bytes = Array(text.utf8)
        guard bytes.count >= 2, bytes.first == UInt8(ascii: "{"), bytes.last == UInt8(ascii: "}") else { return [] }
        if bytes.count == 2 { return [] }
        var values: [String] = []
        var index = 1
        let end = bytes.count - 1
        while index < end {
            var element: [UInt8] = []
            var quoted = false
            if bytes[index] == UInt8(ascii: "\"") {
                quoted = true
                index += 1
                while index < end, bytes[index] != UInt8(ascii: "\"") {
                    if bytes[index] == UInt8(ascii: "\\"), index + 1 < end { index += 1 }
                    element.append(bytes[index])
                    index += 1
                }
                index += 1
            } else {
                while index < end, bytes[index] != UInt8(ascii: ",") {
                    element.append(bytes[index])
                    index += 1
                }
            }
            let value = String(decoding: element, as: UTF8.self)
            if quoted || value != "NULL" { values.append(value) }
            index += 1
        }
        return values
    }
}
