import GantryWorkers
import Testing

/// A process's line longer than the read limit reaches the log in pieces: a secret cut
/// between two pieces is still starred whole, and nothing of it shows in either piece.
/// (No server: the log itself.)
@Suite struct StepLogRedactionTests {
    let secret = "tok_9f8e7d6c5b4a39281706"
    let piece = 16 * 1024

    @Test(arguments: [1, 5, 12, 23])
    func aSecretCutBetweenTwoPiecesIsStillRedacted(splitAt: Int) {
        let log = StepLog(capacity: 64 * 1024, redactor: Redactor([secret]))
        let output = log.processOutput()
        let head = String(repeating: "a", count: piece - splitAt) + String(secret.prefix(splitAt))
        output.write(head)
        // Another writer of the same log in between never picks up the held piece.
        log.write("sent piece 1")
        #expect(!log.excerpt.contains("tok"))
        output.write(String(secret.dropFirst(splitAt)) + " then the end of the line")
        log.finish()
        let shown = log.excerpt
        #expect(!shown.contains(String(secret.prefix(4))), "a piece of the secret showed")
        #expect(shown.contains("***") && shown.hasSuffix(" then the end of the line"))
        #expect(shown.filter { $0 == "a" }.count == piece - splitAt, "nothing else was lost")
    }

    @Test func aPieceHeldAtTheEndOfTheAttemptIsShownByFinish() {
        let log = StepLog(capacity: 64 * 1024, redactor: Redactor([secret]))
        log.processOutput().write(String(repeating: "b", count: piece - 3) + "tok")
        #expect(!log.excerpt.contains("tok"), "held back: it may be the start of the secret")
        log.finish()
        #expect(log.excerpt.hasSuffix("btok"))
    }

    @Test func withoutSecretsLinesPassAsTheyCome() {
        let log = StepLog()
        log.processOutput().write(String(repeating: "c", count: piece))
        #expect(log.excerpt.count > 0)
    }
}
