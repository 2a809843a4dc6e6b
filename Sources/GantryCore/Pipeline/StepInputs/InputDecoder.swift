/// Decodes a kind's `StepInputs` straight from the `JSONValue` tree of `with:`, resolving each
/// `${{ }}` as its key's `InputReading` says. It runs on every attempt's path, so it walks the
/// tree itself rather than printing JSON for `JSONDecoder` to parse again.
///
/// What it reads as the schema (`InputType`) describes:
/// - text is any scalar, a number or boolean read as its text (`env: { N: 3 }`);
/// - a number or boolean written as an expression is read from the text it resolves to;
/// - a `Duration` is text that `DurationParser` reads (`30s`, `1m30s`);
/// - a `JSONValue` is the value as it stands, resolved;
/// - `null` is absent for an optional field; keys no field reads are left alone (the schema
///   refuses them at validate, with the key it meant).
public struct InputDecoder {
    /// The values of the expressions (`run.sha`, `steps.ID.outputs.NAME`, `secrets.NAME`).
    public var bindings: [String: String]

    public init(bindings: [String: String] = [:]) {
        self.bindings = bindings
    }

    /// `T` from `inputs` as written; a problem names its key path (`with.checks[0].url`).
    public func decode<T: Decodable>(_ type: T.Type, from inputs: [String: JSONValue]) throws(InputDecodingError) -> T {
        let decoder = InputValueDecoder(.object(inputs), reading: .resolved, codingPath: [], bindings: Bindings(bindings))
        do {
            return try decoder.unbox(T.self)
        } catch let error as DecodingError {
            throw InputDecodingError(error)
        } catch {
            throw InputDecodingError(path: [], problem: "\(error)")
        }
    }
}

/// Why `with:` does not decode: the key path and the problem, as one line (`with.attempts:
/// must be a whole number, not text 'three'`). Never a secret's value.
public struct InputDecodingError: Error, Sendable, CustomStringConvertible {
    /// `with.checks[0].url`.
    public var path: String
    public var problem: String

    public var description: String { "\(path): \(problem)" }

    init(path: [any CodingKey], problem: String) {
        self.path = InputDecodingError.render(path)
        self.problem = problem
    }

    init(_ error: DecodingError) {
        switch error {
        case .keyNotFound(let key, let context):
            self.init(path: context.codingPath + [key], problem: "not given, and it is required")
        case .valueNotFound(_, let context):
            self.init(path: context.codingPath, problem: "is empty (null); give a value")
        case .typeMismatch(_, let context), .dataCorrupted(let context):
            self.init(path: context.codingPath, problem: context.debugDescription)
        @unknown default:
            self.init(path: [], problem: "\(error)")
        }
    }

    /// `with`, then `.key` for a mapping's key and `[n]` for a list's item.
    static func render(_ path: [any CodingKey]) -> String {
        var text = "with"
        for key in path {
            if let index = key as? ItemIndex { text += "[\(index.index)]" } else { text += "." + key.stringValue }
        }
        return text
    }
}

/// The bindings, and the same with every secret shown as `***`, made on first use.
final class Bindings {
    let values: [String: String]
    private var hidden: [String: String]?

    init(_ values: [String: String]) {
        self.values = values
    }

    func resolve(_ text: String, _ reading: InputReading) -> String {
        guard text.contains("${{") else { return text }
        switch reading {
        case .resolved: return Expressions.substitute(text, values)
        case .secretsHidden: return Expressions.substitute(text, secretsHidden())
        case .asWritten, .shell: return text
        }
    }

    func resolve(_ value: JSONValue, _ reading: InputReading) -> JSONValue {
        switch reading {
        case .resolved: values.isEmpty ? value : Expressions.substitute(value, values)
        case .secretsHidden: Expressions.substitute(value, secretsHidden())
        case .asWritten, .shell: value
        }
    }

    private func secretsHidden() -> [String: String] {
        if let hidden { return hidden }
        var shown = values
        for key in shown.keys where key.hasPrefix("secrets.") { shown[key] = "***" }
        hidden = shown
        return shown
    }
}

/// A list item's place in a coding path, rendered `[n]`.
struct ItemIndex: CodingKey {
    let index: Int
    var stringValue: String { String(index) }
    var intValue: Int? { index }
    init(_ index: Int) { self.index = index }
    init?(stringValue: String) { nil }
    init?(intValue: Int) { self.index = intValue }
}

/// The decoder at one value of the tree: the value as written, how it is read, and where it is.
struct InputValueDecoder: Decoder {
    let value: JSONValue
    let reading: InputReading
    let codingPath: [any CodingKey]
    let bindings: Bindings
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(_ value: JSONValue, reading: InputReading, codingPath: [any CodingKey], bindings: Bindings) {
        self.value = value
        self.reading = reading
        self.codingPath = codingPath
        self.bindings = bindings
    }

    /// The decoder of a value under this one: a key of `InputKey` says how it is read, any
    /// other (a map's, a list's) keeps this value's reading.
    func child(_ value: JSONValue, key: any CodingKey) -> InputValueDecoder {
        InputValueDecoder(value, reading: (key as? any InputKey)?.reading ?? reading, codingPath: codingPath + [key], bindings: bindings)
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let object) = value else { throw mismatch([String: JSONValue].self, "must be a mapping") }
        return KeyedDecodingContainer(InputKeyedContainer<Key>(object: object, decoder: self))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let items) = value else { throw mismatch([JSONValue].self, "must be a list") }
        return InputUnkeyedContainer(items: items, decoder: self)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    // MARK: Values

    /// `T`, with the types the schema reads from text decoded here.
    func unbox<T: Decodable>(_ type: T.Type) throws -> T {
        if T.self == String.self { return try string() as! T }
        if T.self == Int.self { return try integer(Int.self) as! T }
        if T.self == Bool.self { return try bool() as! T }
        if T.self == Double.self { return try number() as! T }
        if T.self == JSONValue.self { return bindings.resolve(value, reading) as! T }
        if T.self == Duration.self { return try duration() as! T }
        return try T(from: self)
    }

    /// The scalar as the executor sees it, and the expression it came from when there was one.
    private func scalar() -> (value: JSONValue, expression: String?) {
        guard case .string(let text) = value, text.contains("${{"), reading != .asWritten, reading != .shell else { return (value, nil) }
        return (.string(bindings.resolve(text, reading)), text)
    }

    func string() throws -> String {
        switch value {
        case .string(let text): return bindings.resolve(text, reading)
        case .number, .bool: return value.jsonText
        case .null: throw DecodingError.valueNotFound(String.self, DecodingError.Context(codingPath: codingPath, debugDescription: "null"))
        case .array, .object: throw mismatch(String.self, "must be text, not a \(value.isArray ? "list" : "mapping")")
        }
    }

    func integer<I: FixedWidthInteger>(_ type: I.Type) throws -> I {
        let (value, expression) = scalar()
        switch value {
        case .number(let number) where number.rounded() == number && abs(number) < 1e15:
            if let whole = I(exactly: number) { return whole }
        case .string(let text) where expression != nil:
            if let number = PlainScalar.number(String(text.trimmingSpaces())), number.rounded() == number,
               abs(number) < 1e15, let whole = I(exactly: number) { return whole }
        default: break
        }
        throw problem(I.self, value, expression, "a whole number")
    }

    func number() throws -> Double {
        let (value, expression) = scalar()
        switch value {
        case .number(let number): return number
        case .string(let text) where expression != nil:
            if let number = PlainScalar.number(String(text.trimmingSpaces())), number.isFinite { return number }
        default: break
        }
        throw problem(Double.self, value, expression, "a number")
    }

    func bool() throws -> Bool {
        let (value, expression) = scalar()
        switch value {
        case .bool(let flag): return flag
        case .string(let text) where expression != nil:
            if let flag = PlainScalar.bool(String(text.trimmingSpaces())) { return flag }
        default: break
        }
        throw problem(Bool.self, value, expression, "true or false")
    }

    func duration() throws -> Duration {
        let text = try string()
        if let expression = Expressions.references(in: .string(text)).first, reading != .asWritten {
            throw mismatch(Duration.self, "'${{ \(expression) }}' has no value here")
        }
        do {
            return try DurationParser.parse(text)
        } catch {
            throw DecodingError.dataCorrupted(DecodingError.Context(codingPath: codingPath, debugDescription: error.description))
        }
    }

    /// What is wrong with a scalar of the wrong sort. The text an expression resolved to is
    /// shown only when no secret went into it.
    private func problem<T>(_ type: T.Type, _ value: JSONValue, _ expression: String?, _ wanted: String) -> DecodingError {
        guard let expression, case .string(let text) = value else {
            let shown: String = switch value {
            case .string(let text): "text '\(text.prefix(80))'"
            case .array: "a list"
            case .object: "a mapping"
            default: value.jsonText
            }
            return mismatch(type, "must be \(wanted), not \(shown)")
        }
        if let unbound = Expressions.references(in: .string(text)).first {
            return mismatch(type, "'${{ \(unbound) }}' has no value here")
        }
        let secret = Expressions.references(in: .string(expression)).contains { $0.hasPrefix("secrets.") }
        return mismatch(type, "'\(expression.prefix(80))' gave \(secret ? "text" : "'\(text.prefix(80))'") that is not \(wanted)")
    }

    func mismatch<T>(_ type: T.Type, _ problem: String) -> DecodingError {
        DecodingError.typeMismatch(type, DecodingError.Context(codingPath: codingPath, debugDescription: problem))
    }
}

extension InputValueDecoder: SingleValueDecodingContainer {
    func decodeNil() -> Bool { value == .null }
    func decode(_ type: Bool.Type) throws -> Bool { try bool() }
    func decode(_ type: String.Type) throws -> String { try string() }
    func decode(_ type: Double.Type) throws -> Double { try number() }
    func decode(_ type: Float.Type) throws -> Float { Float(try number()) }
    func decode(_ type: Int.Type) throws -> Int { try integer(Int.self) }
    func decode(_ type: Int8.Type) throws -> Int8 { try integer(Int8.self) }
    func decode(_ type: Int16.Type) throws -> Int16 { try integer(Int16.self) }
    func decode(_ type: Int32.Type) throws -> Int32 { try integer(Int32.self) }
    func decode(_ type: Int64.Type) throws -> Int64 { try integer(Int64.self) }
    func decode(_ type: UInt.Type) throws -> UInt { try integer(UInt.self) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(UInt8.self) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(UInt16.self) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(UInt32.self) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(UInt64.self) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try unbox(T.self) }
}

private extension JSONValue {
    var isArray: Bool { if case .array = self { true } else { false } }
}
