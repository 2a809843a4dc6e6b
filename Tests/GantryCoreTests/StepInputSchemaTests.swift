import Foundation
import GantryCore
import Testing

/// Every step kind's `with:` is checked at validate and submit: what users met only on the
/// worker (or never: a misspelt gate was ignored) is refused at its line.
@Suite struct StepInputSchemaTests {
    private func problems(_ steps: String) -> [String] {
        PipelineParser().parse("pipeline: p\nsteps:\n" + steps, file: "p.yml").diagnostics.map(\.description)
    }

    @Test func aMisspeltSmokeTestExpectationIsRefusedWithTheKeyItMeant() {
        let found = problems("""
              - id: smoke
                kind: smoke-test
                with:
                  checks:
                    - { url: "http://127.0.0.1:8300/healthz", expect_stauts: 200 }
            """)
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.hasPrefix("p.yml:7:51: step 'smoke': with.checks[0].expect_stauts: unknown key for a smoke-test step; did you mean 'expect_status'?") == true, "\(found)")
    }

    @Test(arguments: [
        ("  - { id: b, kind: build, with: { rnu: make } }\n", "with.rnu: unknown key for a build step; did you mean 'run'?"),
        ("  - { id: s, kind: smoke-test, with: { interval: 1sec, checks: [{ url: \"http://h/\" }] } }\n", "with.interval"),
        ("  - { id: n, kind: notify, with: { channel: webhook, url: \"https://h/x\" } }\n", "secret"),
        ("  - { id: n, kind: notify, with: { channel: sms } }\n", "with.channel 'sms' must be one of slack, webhook, pagerduty"),
        ("  - { id: s, kind: smoke-test, with: { checks: [{ url: \"ftp://h/\" }] } }\n", "with.checks[0].url 'ftp://h/'"),
        ("  - { id: s, kind: smoke-test, with: { checks: [{ url: \"http://h/\", expect_status: 99 }] } }\n", "with.checks[0].expect_status must be a whole number from 100 to 599"),
        ("  - { id: s, kind: smoke-test, with: { checks: [] } }\n", "with.checks needs at least 1 item"),
        ("  - { id: s, kind: smoke-test }\n", "with.checks is required for a smoke-test step"),
        ("  - { id: b, kind: build, with: { run: make, commands: [make] } }\n", "give one of run, commands, not run and commands"),
        ("  - { id: b, kind: build, with: { run: make, env: { 1BAD: x } } }\n", "with.env.1BAD: a variable name is ASCII letters, digits and '_'"),
        ("  - { id: n, kind: noop, with: { output: { résultat: x } } }\n", "with.output.résultat: an output name is ASCII letters"),
        ("  - { id: n, kind: noop, with: { log: \"${{ steps.a.outputs.résultat }}\" } }\n", "'résultat' is not an output name"),
        ("  - { id: n, kind: noop, with: { log: \"${{ secrets.ÉTÉ }}\" } }\n", "write secrets.NAME with NAME in capitals"),
        ("  - { id: n, kind: noop, with: { sleep_ms: soon } }\n", "with.sleep_ms must be a whole number from 0"),
        ("  - { id: n, kind: noop, with: { hang: yes } }\n", "with.hang must be true or false"),
        ("  - { id: d, kind: deploy, with: { service: api, version: v1, run: ./api, listen: \"127.0.0.1:8300\", kubectl: /tmp/x } }\n", "with.kubectl: unknown key for a deploy step"),
        ("  - { id: b, kind: backup, with: { action: restore, from: \"s3://bucket/key\" } }\n", "to_path"),
        ("  - { id: m, kind: metrics-watch, with: { provider: { prometheus: { url: \"http://p:9090\" } }, metrics: [{ name: e, query: q, succes: \"result < 1\" }] } }\n", "did you mean 'success'?"),
    ] as [(String, String)])
    func aWrongInputIsRefusedAtItsLine(step: String, expected: String) {
        let found = problems(step)
        #expect(found.contains { $0.contains(expected) }, "\(found)")
        #expect(found.allSatisfy { $0.hasPrefix("p.yml:3:") }, "every problem is placed on the step's line: \(found)")
    }

    @Test func anExpressionStandsForAnyValueAndIsCheckedOnTheWorker() {
        #expect(problems("""
              - { id: a, kind: noop, with: { output: { port: "8300" } } }
              - id: s
                kind: smoke-test
                needs: [a]
                with:
                  attempts: "${{ steps.a.outputs.port }}"
                  checks: [{ url: "http://127.0.0.1:${{ steps.a.outputs.port }}/", expect_status: "${{ steps.a.outputs.port }}" }]
            """) == [])
        // An expression cannot stand for a list or a mapping with text around it.
        #expect(problems("  - { id: s, kind: smoke-test, with: { checks: \"x ${{ run.sha }}\" } }\n").first?.contains("with.checks must be a list") == true)
    }

    @Test func plainValuesAreReadAsYAML12ReadsThem() throws {
        // YAML 1.1 made this a base-60 number (0) and `yes` a boolean.
        let definition = try #require(PipelineParser().parse("""
            pipeline: p
            steps:
              - { id: b, kind: build, with: { run: docker push registry.local/api:latest, env: { WHEN: "12:30", ON: yes, N: 0x1F, F: 1.5e3 } } }
            """, file: "p.yml").definition)
        let inputs = try #require(definition.steps.first?.inputs)
        #expect(inputs["run"] == .string("docker push registry.local/api:latest"))
        #expect(inputs["env"] == .object(["WHEN": .string("12:30"), "ON": .string("yes"), "N": .number(31), "F": .number(1500)]))
        #expect(PlainScalar.number("1:30") == nil && PlainScalar.number("-2.5") == -2.5 && PlainScalar.number("1e") == nil && PlainScalar.number(".5") == 0.5)
        #expect(PlainScalar.bool("on") == nil && PlainScalar.bool("TRUE") == true)
    }

    /// The examples of docs/step-kinds.md are what users copy: each must validate as written,
    /// and then decode into its kind's inputs as the executor reads them.
    @Test func everyExampleInTheStepKindsDocumentValidatesAndDecodes() throws {
        let document = try String(contentsOfFile: Self.repository + "/docs/step-kinds.md", encoding: .utf8)
        var examples = 0
        var decoded = 0
        for block in document.components(separatedBy: "```yaml\n").dropFirst() {
            let text = block.components(separatedBy: "```").first ?? ""
            guard text.hasPrefix("- id:") else { continue }
            examples += 1
            // A block sequence may sit at its key's indentation, so `on_failure:` in an example stays a section.
            let (definition, diagnostics) = PipelineParser().parse("pipeline: p\nsteps:\n" + text, file: "p.yml")
            #expect(diagnostics.map(\.description) == [], "an example of docs/step-kinds.md: \(diagnostics)\n\(text)")
            decoded += Self.decodeEveryStep(try #require(definition), in: "docs/step-kinds.md:\n\(text)")
        }
        #expect(examples >= 7)
        #expect(decoded >= examples)
    }

    /// The shipped pipelines validate (PipelineParserTests) and decode, step by step.
    @Test(arguments: ["development", "staging", "production"])
    func everyPlatformPipelineDecodes(name: String) throws {
        let text = try String(contentsOfFile: Self.repository + "/pipelines/\(name).yml", encoding: .utf8)
        let definition = try #require(PipelineParser().parse(text, file: "\(name).yml").definition)
        #expect(Self.decodeEveryStep(definition, in: "pipelines/\(name).yml") > 0)
    }

    /// Decodes each step's inputs as a worker would, with a plausible value for every
    /// expression; the number of steps decoded.
    private static func decodeEveryStep(_ definition: PipelineDefinition, in place: String) -> Int {
        var count = 0
        for step in definition.steps + definition.onFailure + definition.finally {
            guard let type = StepInputSchemas.inputs(for: step.kind) else { continue }
            var bindings: [String: String] = [:]
            for expression in Expressions.references(in: .object(step.inputs)) {
                bindings[expression] = plausible[expression] ?? "value-of-\(expression)"
            }
            #expect(throws: Never.self, "step '\(step.id)' of \(place)") {
                _ = try InputDecoder(bindings: bindings).decode(type, from: step.inputs)
            }
            count += 1
        }
        return count
    }

    /// What some expressions of the examples stand for (production's default, here); any other
    /// is bound to text naming it, which is what each field that holds one takes today. An
    /// expression in a field of another type needs a value here that fits it.
    private static let plausible: [String: String] = [
        "run.params.pagerduty_url": "",
    ]

    /// A kind's schema (what validate checks) and its struct (what the executor reads) name the
    /// same keys, level by level: a key read but not checked, or checked but never read, fails here.
    @Test func everySchemaNamesTheKeysItsKindReads() {
        for kind in PipelineParser.standardKinds.subtracting(["approval"]).sorted() {
            guard let schema = StepInputSchemas.schema(for: kind), let type = StepInputSchemas.inputs(for: kind) else {
                Issue.record("\(kind) has no schema or no inputs struct")
                continue
            }
            Self.compareKeys(schema, type, at: "\(kind): with")
        }
    }

    private static func compareKeys(_ schema: InputSchema, _ type: any StepInputs.Type, at path: String) {
        #expect(schema.keys.sorted() == type.inputKeys.sorted(), "\(path): the schema's keys, then \(type)'s CodingKeys")
        #expect(Set(type.nestedInputs.keys).isSubset(of: schema.keys), "\(path): \(type).nested names keys the schema does not have")
        for field in schema.fields {
            switch (nestedSchema(field.type), type.nestedInputs[field.name]) {
            case let (nested?, nestedType?): compareKeys(nested, nestedType, at: "\(path).\(field.name)")
            case (nil, nil): break
            case (_?, nil): Issue.record("\(path).\(field.name) is a mapping in the schema; \(type).nested has no type for it")
            case (nil, _?): Issue.record("\(path).\(field.name) is no mapping in the schema, but \(type).nested has a type for it")
            }
        }
    }

    /// The schema of the mapping a field holds: an object, a list of them, or one of the choices.
    private static func nestedSchema(_ type: InputType) -> InputSchema? {
        switch type {
        case .object(let schema): schema
        case .list(let item, _): nestedSchema(item)
        case .either(let types): types.lazy.compactMap(nestedSchema).first
        default: nil
        }
    }

    /// The keys a struct reads as written are exactly those where validate refuses an
    /// expression: anywhere else an expression is resolved (or, in shell text, made a variable),
    /// so refusing it would refuse what works, and accepting one at a key read as written would
    /// let the worker meet `${{ … }}` as the value.
    @Test func theSchemaRefusesAnExpressionExactlyWhereItsKindReadsAsWritten() {
        for kind in PipelineParser.standardKinds.subtracting(["approval"]).sorted() {
            guard let schema = StepInputSchemas.schema(for: kind), let type = StepInputSchemas.inputs(for: kind) else { continue }
            probe(kind: kind, schema, type, path: "with") { $0 }
        }
    }

    /// Writes an expression at each key of `schema` in turn (nested into the mappings above it
    /// by `place`) and compares validate's answer with the key's reading.
    private func probe(kind: String, _ schema: InputSchema, _ type: any StepInputs.Type, path: String, place: (JSONValue) -> JSONValue) {
        let expression = JSONValue.string("${{ run.sha }}")
        for field in schema.fields {
            let at = "\(path).\(field.name)"
            if let nested = Self.nestedSchema(field.type), let nestedType = type.nestedInputs[field.name] {
                let isList = if case .list = field.type { true } else { false }
                probe(kind: kind, nested, nestedType, path: at) { value in
                    place(.object([field.name: isList ? .array([value]) : value]))
                }
            }
            let value: JSONValue
            switch field.type {
            case .list(.object, _), .object: continue
            case .list: value = .array([expression])
            case .map: value = .object(["NAME": expression])
            default: value = expression
            }
            let step = place(.object([field.name: value])).jsonText
            let refused = problems("  - { id: s, kind: \(kind), with: \(step) }\n").contains { $0.contains("as written") }
            #expect(refused == (type.reading(of: field.name) == .asWritten), "\(kind) \(at): refused \(refused), read \(String(describing: type.reading(of: field.name)))")
        }
    }

    @Test func everyKindButApprovalHasASchema() {
        for kind in PipelineParser.standardKinds.subtracting(["approval"]) {
            #expect(StepInputSchemas.schema(for: kind) != nil, "\(kind)")
        }
    }

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
}
