import GantryCore
@testable import GantryDispatcher
import Testing

/// The enqueuer's run ids draw their random bits 32 words at a time (the id's format is
/// `Identifiers.newRunID`'s, tested in JobTests): across refills they stay distinct.
@Suite struct BufferedRandomTests {
    @Test func runIDsDrawnAcrossManyRefillsStayDistinct() {
        var random = BufferedSystemRandom()
        // Two words per id: 10,000 words, over 300 refills of the buffer, all in one millisecond.
        let ids = (0..<5_000).map { _ in Identifiers.newRunID(nowMs: 0x0193_4A5B_6C7D, using: &random) }
        #expect(Set(ids).count == 5_000)
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
