import Foundation
import GantryCore
import Testing

@Suite struct ShellExpressionsTests {
    @Test func expressionsBecomeQuotedEnvironmentVariables() {
        let rewritten = ShellExpressions.rewrite("docker build -t api:${{ run.sha }} --label ref=${{run.ref}} && echo ${{ run.sha }}")
        #expect(rewritten.command == #"docker build -t api:"${GANTRY_EXPR_1}" --label ref="${GANTRY_EXPR_2}" && echo "${GANTRY_EXPR_1}""#)
        #expect(rewritten.variables.map(\.name) == ["GANTRY_EXPR_1", "GANTRY_EXPR_2"])
        #expect(rewritten.variables.map(\.expression) == ["run.sha", "run.ref"])
    }

    @Test func theReferenceFitsItsQuotingContext() {
        let cases: [(String, String)] = [
            (#"echo "v=${{ x }}!""#, #"echo "v=${GANTRY_EXPR_1}!""#),
            (#"echo 'v=${{ x }}!'"#, #"echo 'v='"${GANTRY_EXPR_1}"'!'"#),
            (#"echo "$(basename ${{ x }})""#, #"echo "$(basename "${GANTRY_EXPR_1}")""#),
            (#"echo "a\"${{ x }}""#, #"echo "a\"${GANTRY_EXPR_1}""#),
            (#"echo \'${{ x }}"#, #"echo \'"${GANTRY_EXPR_1}""#),
            ("cat <<EOF\nv=${{ x }}\nEOF\necho ${{ x }}", "cat <<EOF\nv=${GANTRY_EXPR_1}\nEOF\necho \"${GANTRY_EXPR_1}\""),
            ("cat <<-END >f\n\tv=${{ x }}\n\tEND\necho ${{ x }}", "cat <<-END >f\n\tv=${GANTRY_EXPR_1}\n\tEND\necho \"${GANTRY_EXPR_1}\""),
            ("echo $(( 1 << 2 )) ${{ x }}", "echo $(( 1 << 2 )) \"${GANTRY_EXPR_1}\""),
            ("echo hi # not ${{ x }}\necho ${{ x }}", "echo hi # not ${{ x }}\necho \"${GANTRY_EXPR_1}\""),
        ]
        for (command, expected) in cases {
            #expect(ShellExpressions.rewrite(command).command == expected, "\(command)")
        }
    }

    @Test func aQuotedHeredocCannotExpandAndIsReportedByLine() {
        let rewritten = ShellExpressions.rewrite("echo start\ncat <<'EOF'\nv=${{ run.sha }}\nEOF\necho ${{ run.ref }}")
        #expect(rewritten.unexpandable.map(\.line) == [3])
        #expect(rewritten.unexpandable.map(\.expression) == ["run.sha"])
        #expect(rewritten.variables.map(\.expression) == ["run.ref"])
    }

    @Test func aHostileValueNeverReachesTheCommandText() {
        let rewritten = ShellExpressions.rewrite("git checkout ${{ run.ref }}")
        #expect(rewritten.command == #"git checkout "${GANTRY_EXPR_1}""#)
        #expect(!rewritten.command.contains("run.ref"))
    }

    @Test func textWithoutExpressionsIsUnchanged() {
        for text in ["make test", "echo '${{' not closed", "", "cat <<EOF\n$HOME\nEOF"] {
            #expect(ShellExpressions.rewrite(text) == ShellExpressions.Rewritten(command: text, variables: []))
        }
    }

    /// The real test of the rewrite: bash prints each value exactly, in every
    /// quoting context, and runs none of it.
    @Test(arguments: ["plain", "two  spaces\tand tab", "$(touch /tmp/gantry-pwned)", "`id`", "a'b\"c\\d", "*", "line\nbreak", "-n", ""])
    func bashPrintsTheValueExactlyAndRunsNothing(value: String) throws {
        let commands = [
            "printf '%s|' ${{ v }}",
            "printf '%s|' \"${{ v }}\"",
            "printf '%s|' 'pre-${{ v }}-post'",
            "printf '%s|' \"$(printf '%s' ${{ v }})\"",
            "cat <<EOF\n${{ v }}|\nEOF",
        ]
        let expected = [value + "|", value + "|", "pre-\(value)-post|", value + "|", value + "|\n"]
        for (command, want) in zip(commands, expected) {
            let rewritten = ShellExpressions.rewrite(command)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = ["--noprofile", "--norc", "-c", rewritten.command]
            process.environment = Dictionary(uniqueKeysWithValues: rewritten.variables.map { ($0.name, value) })
            let out = Pipe()
            process.standardOutput = out
            try process.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            #expect(String(decoding: data, as: UTF8.self) == want, "\(command) → \(rewritten.command)")
        }
        #expect(!FileManager.default.fileExists(atPath: "/tmp/gantry-pwned"))
    }
}
