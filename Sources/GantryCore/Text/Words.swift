extension String {
    /// The text split at single spaces, on its UTF-8 bytes (`split(separator:)` walks Characters,
    /// and it was a sixth of a dispatcher's CPU): at most `maxSplits` splits, the rest of the text
    /// (spaces and all) in the last word. Empty words are kept, so "a  b" is three words.
    public func spaceSeparatedWords(maxSplits: Int = .max) -> [Substring] {
        words(separatedBy: UInt8(ascii: " "), maxSplits: maxSplits)
    }

    /// The text split at each `separator` byte (an ASCII character), as `spaceSeparatedWords`.
    public func words(separatedBy separator: UInt8, maxSplits: Int = .max) -> [Substring] {
        var words: [Substring] = []
        words.reserveCapacity(min(maxSplits, 16) + 1)
        let bytes = utf8
        var start = bytes.startIndex, index = start
        while index != bytes.endIndex, words.count < maxSplits {
            if bytes[index] == separator {
                words.append(self[start..<index])
                start = bytes.index(after: index)
            }
            index = bytes.index(after: index)
        }
        words.append(self[start...])
        return words
    }
}

extension String {
    /// Whether `needle` occurs in the text, compared byte by byte on UTF-8 (Foundation's
    /// `contains` bridges through NSString and allocated on every call of a worker's hot path).
    public func contains(utf8 needle: String) -> Bool {
        var text = self, needle = needle
        // Native strings are contiguous already; this only copies one that is not.
        text.makeContiguousUTF8()
        needle.makeContiguousUTF8()
        return text.utf8.withContiguousStorageIfAvailable { bytes in
            needle.utf8.withContiguousStorageIfAvailable { wanted in
                guard let first = wanted.first else { return true }
                guard bytes.count >= wanted.count else { return false }
                for start in 0...(bytes.count - wanted.count) where bytes[start] == first {
                    var matched = 1
                    while matched < wanted.count && bytes[start + matched] == wanted[matched] { matched += 1 }
                    if matched == wanted.count { return true }
                }
                return false
            } ?? false
        } ?? false
    }
}
