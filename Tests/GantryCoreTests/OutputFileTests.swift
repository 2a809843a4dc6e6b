import GantryCore
import Testing

@Suite struct OutputFileTests {
    @Test func readsNameValueLinesAndHeredocsAsGitHubActionsWritesThem() throws {
        let text = """
            image=registry.local/api:3f2a9c1
            empty=
            url=https://x.test/?a=b&c=d
            notes<<EOF
            line one
            a=b is not an output here
            EOF
            crlf=yes\r
            image=registry.local/api:later

            """
        let outputs = try OutputFile.parse(text)
        #expect(outputs == [
            "image": "registry.local/api:later",
            "empty": "",
            "url": "https://x.test/?a=b&c=d",
            "notes": "line one\na=b is not an output here",
            "crlf": "yes",
        ])
    }

    @Test func anEmptyFileHasNoOutputsAndAnEmptyHeredocIsAnEmptyValue() throws {
        #expect(try OutputFile.parse("") == [:])
        #expect(try OutputFile.parse("\n\n  \n") == [:])
        #expect(try OutputFile.parse("a<<X\nX\n") == ["a": ""])
        // The first of `<<` and `=` decides the form.
        #expect(try OutputFile.parse("eq=a<<b") == ["eq": "a<<b"])
        #expect(try OutputFile.parse("doc<<=END\nv\n=END") == ["doc": "v"])
    }

    @Test(arguments: [
        ("just text", 1, "neither name=value nor name<<DELIMITER"),
        ("ok=1\n1abc=2", 2, "'1abc' is not an output name"),
        ("=value", 1, "'' is not an output name"),
        ("a b=c", 1, "'a b' is not an output name"),
        ("notes<<EOF\nnever closed", 1, "is never closed by a line 'EOF'"),
        ("x=1\n\nnotes<<", 3, "needs a delimiter"),
    ])
    func refusesMalformedLinesNamingTheLine(text: String, line: Int, problem: String) {
        do {
            let outputs = try OutputFile.parse(text)
            Issue.record("accepted \(outputs)")
        } catch {
            #expect(error.line == line)
            #expect(error.description.hasPrefix("$GANTRY_OUTPUT line \(line): "))
            #expect(error.description.contains(problem), "\(error)")
        }
    }
}
