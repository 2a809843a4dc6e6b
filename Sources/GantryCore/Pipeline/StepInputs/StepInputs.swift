/// A step kind's `with:` as its executor reads it: one `Decodable` struct per kind (and per
/// nested mapping), decoded on the worker by `InputDecoder`. Its `CodingKeys` are the keys
/// the kind's `InputSchema` checks at validate and submit; StepInputSchemaTests holds the two
/// equal, key for key and level by level, so that a key cannot be read without being checked
/// or checked without being read.
public protocol StepInputs: Decodable, Sendable {
    /// The `with:` keys, exactly as written (snake_case), each saying how its value is read.
    associatedtype CodingKeys: InputKey
    /// The types of the keys whose values are nested mappings (a mapping, a list of them, or
    /// either a mapping or a scalar), for the schema's nested schemas to be compared with.
    static var nested: [CodingKeys: any StepInputs.Type] { get }
}

extension StepInputs {
    public static var nested: [CodingKeys: any StepInputs.Type] { [:] }

    /// The keys as written, in declaration order.
    public static var inputKeys: [String] { CodingKeys.allCases.map(\.stringValue) }

    /// `nested` by key name.
    public static var nestedInputs: [String: any StepInputs.Type] {
        Dictionary(uniqueKeysWithValues: nested.map { ($0.key.stringValue, $0.value) })
    }

    /// How the value at `key` is read, or nil for a key that is not an input.
    public static func reading(of key: String) -> InputReading? {
        CodingKeys(stringValue: key)?.reading
    }
}

/// A `with:` key: its name, and how the executor reads the value written there.
public protocol InputKey: CodingKey, CaseIterable, Hashable, Sendable {
    var reading: InputReading { get }
}

extension InputKey {
    public var reading: InputReading { .resolved }
}

/// How a value of `with:` reaches the executor. A key's reading holds for the scalars under
/// it, down to the next mapping, whose own keys say again.
public enum InputReading: Sendable, Equatable {
    /// Every `${{ }}` replaced by its value (secrets included). A number or boolean written as an
    /// expression is read from the text it resolves to.
    case resolved
    /// Resolved for text people read elsewhere (a notification): a secret shows as `***`.
    case secretsHidden
    /// As written, never resolved: what decides where and how the worker acts (a target, a
    /// shell, a name that reaches a host or a header) is not taken from a run's values. The
    /// schema refuses an expression there, at validate.
    case asWritten
    /// Shell text, as written: `ShellExpressions` turns each expression into an environment
    /// variable at run time, so that no value is ever pasted into a command.
    case shell
}

/// One of a fixed set of words (`strategy: rolling`). Decoding refuses any other word, naming
/// the words it takes.
public protocol InputWord: RawRepresentable<String>, CaseIterable, Decodable, Sendable {}

extension InputWord {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let word = Self(rawValue: text) else {
            throw DecodingError.dataCorrupted(DecodingError.Context(
                codingPath: decoder.codingPath,
                debugDescription: "'\(text.prefix(80))' is not one of \(Self.words.joined(separator: ", "))"
            ))
        }
        self = word
    }

    /// The words, as written.
    public static var words: [String] { allCases.map(\.rawValue) }
}

/// One item, or a list of them (`on: failure` or `on: [failure, rollback]`).
public struct OneOrMore<Item: Decodable & Sendable>: Decodable, Sendable {
    public var items: [Item]

    public init(_ items: [Item]) {
        self.items = items
    }

    public init(from decoder: any Decoder) throws {
        if var list = try? decoder.unkeyedContainer() {
            var items: [Item] = []
            while !list.isAtEnd { items.append(try list.decode(Item.self)) }
            self.items = items
        } else {
            items = [try decoder.singleValueContainer().decode(Item.self)]
        }
    }
}
