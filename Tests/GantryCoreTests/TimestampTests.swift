import Foundation
import GantryCore
import Testing

@Suite struct TimestampTests {
    @Test func matchesFoundationsISO8601Formatter() {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var random = SeededRandom(seed: 7)
        // Days across leap years and centuries, both sides of the epoch, plus fixed edge cases.
        let samples: [Int64] = [0, 1, 999, 86_399_999, 951_782_400_000, 4_107_542_399_999, -1, -86_400_000, 1_795_802_827_274]
            + (0..<2_000).map { _ in Int64.random(in: -2_208_988_800_000...4_102_444_800_000, using: &random) }
        for ms in samples {
            let expected = formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1_000))
            #expect(Timestamp.iso8601(ms: ms) == expected, "\(ms)")
        }
        #expect(Timestamp.iso8601(us: 1_795_802_827_274_999) == "2026-11-27T18:07:07.274Z")
    }

    @Test func parsesWhatItWritesAndRefusesAnythingElse() {
        var random = SeededRandom(seed: 11)
        for ms in (0..<2_000).map({ _ in Int64.random(in: -2_208_988_800_000...4_102_444_800_000, using: &random) }) + [0, -1, 951_782_400_000] {
            #expect(Timestamp.parseISO8601(Timestamp.iso8601(ms: ms)) == ms, "\(ms)")
        }
        #expect(Timestamp.parseISO8601("2026-11-27T18:07:07Z") == 1_795_802_827_000)
        #expect(Timestamp.parseISO8601("2026-11-27T18:07:07.2Z") == 1_795_802_827_200)
        #expect(Timestamp.parseISO8601("2026-11-27T18:07:07.274999Z") == 1_795_802_827_274)
        for bad in ["", "2026-11-27", "2026-11-27T18:07:07", "2026-13-27T18:07:07Z", "2026-11-27 18:07:07Z",
                    "2026-11-27T18:07:07.Z", "2026-11-27T18:07:07+01:00", "yyyy-11-27T18:07:07Z"] {
            #expect(Timestamp.parseISO8601(bad) == nil, "\(bad)")
        }
    }
}
