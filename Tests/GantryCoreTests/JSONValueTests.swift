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
