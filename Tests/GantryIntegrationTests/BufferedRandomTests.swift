import Foundation
import GantryCore
@testable import GantryDispatcher
import Testing

/// The enqueuer's run ids draw their random bits 32 words at a time: across refills they stay
/// distinct, well-formed UUIDv7s.
@Suite struct BufferedRandomTests {
    @Test func runIDsDrawnAcrossManyRefillsAreDistinctUUIDv7s() throws {
        var random = BufferedSystemRandom()
        let ms: Int64 = 0x0193_4A5B_6C7D
        var seen: Set<String> = []
        // Two words per id: 10,000 words, over 300 refills of the buffer.
        for _ in 0..<5_000 {
            let id = Identifiers.newRunID(nowMs: ms, using: &random)
            #expect(id.hasPrefix("01934a5b-6c7d-7"))
            #expect(UUID(uuidString: id) != nil, "\(id)")
            seen.insert(id)
        }
        #expect(seen.count == 5_000)
        // Every bit position takes both values over many words (a buffer left unfilled would not).
        var ones: UInt64 = 0, zeros: UInt64 = 0
        for _ in 0..<256 {
            let word = random.next()
            ones |= word
            zeros |= ~word
        }
        #expect(ones == .max && zeros == .max)
    }
}
