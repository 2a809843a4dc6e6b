import GantryCore
import Testing

@Suite struct DurationParserTests {
    @Test(arguments: [
        ("500ms", Int64(500)), ("2s", 2_000), ("1m", 60_000), ("1m30s", 90_000), ("4h", 14_400_000),
        ("1d", 86_400_000), ("1.5s", 1_500), (" 10s ", 10_000), ("0s", 0),
    ])
    func parsesWhatUsersWrite(text: String, ms: Int64) throws {
        #expect(try DurationParser.parse(text).milliseconds == ms)
    }

    @Test(arguments: ["", "10", "s", "10x", "-5s", "1m30", "ten seconds", "1e3s", "5 s s"])
    func refusesWithOneLineThatShowsTheFormat(text: String) {
        do {
            _ = try DurationParser.parse(text)
            Issue.record("accepted '\(text)'")
        } catch {
            #expect(error.input == text)
            #expect(error.description.contains("e.g. 500ms"))
            #expect(!error.description.contains("\n"))
        }
    }

    @Test(arguments: [Int64(0), 1, 999, 1_000, 90_000, 3_600_000, 86_400_001_500])
    func formatRoundTrips(ms: Int64) throws {
        let text = DurationParser.format(.milliseconds(ms))
        #expect(try DurationParser.parse(text).milliseconds == ms)
    }

    @Test func formatUsesLargestUnits() {
        #expect(DurationParser.format(.seconds(90)) == "1m30s")
        #expect(DurationParser.format(.milliseconds(2_500)) == "2s500ms")
    }
}
