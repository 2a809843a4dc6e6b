import Foundation
import GantryCore
import Testing

@Suite struct JSONValueTests {
    static let awkward: [String] = [
        "", "plain", "\"", "\\", "a\"b\\c", "line\nbreak\r\n", "\t tab", "\u{0}\u{1}\u{1F}\u{7F}",
        "é ü ß", "日本語", "emoji 🚀 and 👩‍👩‍👧", "e\u{301} combining", "end\\", "\"start",
        String(repeating: "x", count: 5_000) + "\n",
    ]

    /// What the writer produces, Foundation's decoder reads back unchanged.
    @Test(arguments: awkward)
    func stringsRoundTripThroughFoundation(_ value: String) throws {
        var text = ""
        JSONValue.writeString(value, to: &text)
        #expect(try JSONDecoder().decode(String.self, from: Data(text.utf8)) == value)
        #expect(JSONValue.parse(text) == .string(value))
    }

    @Test func controlCharactersAreEscapedAsJSONRequires() {
        var text = ""
        JSONValue.writeString("a\u{0}b\u{1B}c\nd\"e\\f", to: &text)
        #expect(text == #""a\u0000b\u001bc\nd\"e\\f""#)
    }

    @Test func objectsHaveSortedKeys() {
        let value = JSONValue.object(["b": .string("2"), "a": .array([.number(1), .bool(true), .null]), "c\"": .string("é")])
        #expect(value.jsonText == #"{"a":[1,true,null],"b":"2","c\"":"é"}"#)
    }
}

/// The parser behind `JSONValue.parse`, checked against RFC 8259 cases and against
/// Foundation on generated documents.
@Suite struct JSONParserTests {
    @Test(arguments: [
        ("{}", JSONValue.object([:])), ("[]", .array([])), ("0", .number(0)), ("-0.5e2", .number(-50)),
        ("1E+2", .number(100)), ("true", .bool(true)), ("false", .bool(false)), ("null", .null),
        (" \t\r\n{ \"a\" : [ 1 , 2 ] }\n", .object(["a": .array([.number(1), .number(2)])])),
        (#""\"\\\/\b\f\n\r\t""#, .string("\"\\/\u{8}\u{C}\n\r\t")),
        (#""\u00e9\u65e5\ud83d\ude80""#, .string("é日🚀")), (#""é🚀 plain""#, .string("é🚀 plain")),
        (#"{"k":1,"k":2}"#, .object(["k": .number(2)])),
        ("123456789012345", .number(123_456_789_012_345)),
    ])
    func validDocumentsParse(_ text: String, _ expected: JSONValue) {
        #expect(JSONValue.parse(text) == expected)
    }

    @Test(arguments: [
        "", " ", "{", "}", "[1,]", "{\"a\":1,}", "{'a':1}", "{a:1}", "01", "-", "1.", ".5", "1e", "+1", "NaN", "Infinity",
        "tru", "nul", "[1 2]", "{\"a\" 1}", "\"unterminated", "\"tab\there\"", "\"bad \\x escape\"", "\"\\u12\"",
        "\"\\ud83d\"", "\"\\ude80\"", "\"\\ud83d\\u0041\"", "1 2", "[] []", "// comment\n{}", "1e400",
    ])
    func invalidDocumentsAreRefused(_ text: String) {
        #expect(JSONValue.parse(text) == nil, "accepted \(text.debugDescription)")
    }

    @Test func nestingDeeperThanTheLimitIsRefusedWithoutExhaustingTheStack() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(JSONValue.parse(deep) == nil)
        let fine = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(JSONValue.parse(fine) != nil)
    }

    /// Random documents: what the writer prints, the parser reads back, and Foundation agrees.
    @Test func generatedDocumentsRoundTripAndAgreeWithFoundation() throws {
        var random = SeededRandom(seed: 42)
        let pieces = ["", "a", "é", "日本", "🚀", "\"", "\\", "\n", "\u{1}", "/", " ", "x\u{301}"]
        func string() -> String {
            (0..<Int.random(in: 0...4, using: &random)).map { _ in pieces.randomElement(using: &random)! }.joined()
        }
        func value(_ depth: Int) -> JSONValue {
            switch Int.random(in: 0...(depth > 3 ? 3 : 5), using: &random) {
            case 0: return .null
            case 1: return .bool(Bool.random(using: &random))
            case 2: return .number([0, -1, 2.5, 1e-7, 123_456_789, -3.25e10].randomElement(using: &random)!)
            case 3: return .string(string())
            case 4: return .array((0..<Int.random(in: 0...4, using: &random)).map { _ in value(depth + 1) })
            default:
                var object: [String: JSONValue] = [:]
                for _ in 0..<Int.random(in: 0...4, using: &random) { object[string()] = value(depth + 1) }
                return .object(object)
            }
        }
        for _ in 0..<500 {
            let original = value(0)
            let text = original.jsonText
            #expect(JSONValue.parse(text) == original, "\(text)")
            let foundation = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
            #expect(foundation == original)
        }
    }
}
