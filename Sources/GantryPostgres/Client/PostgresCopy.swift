/// Rows in the text format of `COPY … FROM STDIN`: one line per row, columns
/// separated by tabs, `\N` for NULL, and backslash, tab, newline and carriage
/// return escaped with a backslash. The cheapest way to insert a batch: the server
/// parses each value once, with no array to build and unnest, and fills heap pages
/// several rows at a time.
struct PostgresCopyRows: Sendable {
    private(set) var bytes: [UInt8] = []
    private(set) var count = 0

    init(capacity: Int = 0) {
        bytes.reserveCapacity(capacity)
    }

    /// Appends one row; `nil` is NULL.
    mutating func append(_ values: [String?]) {
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: "\t")) }
            guard let value else {
                bytes.append(UInt8(ascii: "\\"))
                bytes.append(UInt8(ascii: "N"))
                continue
            }
            // Nearly every value needs no escape: copy it whole when none does.
            let copied = value.utf8.withContiguousStorageIfAvailable { text -> Bool in
                guard !text.contains(where: { Self.escape($0) != nil }) else { return false }
                bytes.append(contentsOf: text)
                return true
            }
            if copied == true { continue }
            for byte in value.utf8 {
                if let letter = Self.escape(byte) {
                    bytes.append(UInt8(ascii: "\\"))
                    bytes.append(letter)
                } else {
                    bytes.append(byte)
                }
            }
        }
        bytes.append(UInt8(ascii: "\n"))
        count += 1
    }

    /// The letter that follows a backslash for a byte COPY's text format escapes; nil for any other.
    private static func escape(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "\\"): UInt8(ascii: "\\")
        case UInt8(ascii: "\t"): UInt8(ascii: "t")
        case UInt8(ascii: "\n"): UInt8(ascii: "n")
        case UInt8(ascii: "\r"): UInt8(ascii: "r")
        default: nil
        }
    }
}
