@testable import GantryDispatcher
import Testing

/// A queue's rate comes from readings of Redis's count of entries taken, a minute of them.
@Suite struct QueueRatesTests {
    @Test func aRateNeedsReadingsFiveSecondsApartAndCoversTheLastMinute() {
        let rates = QueueRates()
        #expect(rates.note("noop", taken: 100, atMs: 0) == nil)
        #expect(rates.note("noop", taken: 150, atMs: 4_000) == nil)
        #expect(rates.note("noop", taken: 200, atMs: 10_000) == 600)
        // Readings older than a minute no longer count.
        #expect(rates.note("noop", taken: 200, atMs: 70_000) == 0)
        #expect(rates.note("build", taken: 5, atMs: 70_000) == nil)
    }

    @Test func aStreamMadeAgainStartsOver() {
        let rates = QueueRates()
        rates.note("noop", taken: 1_000, atMs: 0)
        // Redis was flushed: the count starts again from zero, and the old readings no longer compare.
        #expect(rates.note("noop", taken: 10, atMs: 6_000) == nil)
        #expect(rates.note("noop", taken: 70, atMs: 12_000) == 600)
    }
}
