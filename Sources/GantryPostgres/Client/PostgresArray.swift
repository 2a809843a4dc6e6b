/// Text literals of Postgres arrays, so a batch of rows travels as a few array
/// parameters (`unnest($1::uuid[], $2::text[] …)`) instead of thousands of `$n`.
enum PostgresArray {
    /// `{"a","b",NULL}` with `"` and `\` escaped.
    static func literal(_ values: [String?]) -> String {
        var out = "{"
        for (index, value) in values.enumerated() {
            if index > 0 { out += "," }
            guard let value else {
                out += "NULL"
                continue
            }
            out += "\""
            for character in value.unicodeScalars {
                if character == "\"" || character == "\\" { out += "\\" }
                out.unicodeScalars.append(character)
            }
            out += "\""
        }
        out += "}"
        return out
    }

    static func literal(_ values: [String]) -> String {
        literal(values.map { Optional($0) })
    }

    static func literal<T: BinaryInteger>(_ values: [T?]) -> String {
        literal(values.map { $0.map { String($0) } })
    }
}
