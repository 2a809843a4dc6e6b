extension String {
    /// The text split at single spaces, on its UTF-8 bytes (`split(separator:)` walks Characters,
    /// and it was a sixth of a dispatcher's CPU): at most `maxSplits` splits, the rest of the text
    /// (spaces and all) in the last word. Empty words are kept, so "a  b" is three words.
    public func spaceSeparatedWords(maxSplits: Int = .max) -> [Substring] {
        var words: [Substring] = []
        words.reserveCapacity(min(maxSplits, 16) + 1)
        let bytes = utf8
        var start = bytes.startIndex, index = start
        while index != bytes.endIndex, words.count < maxSplits {
            if bytes[index] == UInt8(ascii: " ") {
                words.append(self[start..<index])
                start = bytes.index(after: index)
            }
            index = bytes.index(after: index)
        }
        words.append(self[start...])
        return words
    }
}
