/// UTC timestamps as ISO 8601 text (`2026-11-27T18:47:41.662Z`), written directly:
/// the API formats dozens per response, and a `DateFormatter` per call cost more
/// than the rest of the response.
public enum Timestamp {
    /// `ms` since the Unix epoch, with milliseconds.
    public static func iso8601(ms: Int64) -> String {
        let days = ms >= 0 ? ms / 86_400_000 : (ms - 86_399_999) / 86_400_000
        let msOfDay = ms - days * 86_400_000
        let (year, month, day) = civil(fromDays: days)
        var out = ""
        out.reserveCapacity(24)
        append(year, width: 4, to: &out)
        out += "-"
        append(month, width: 2, to: &out)
        out += "-"
        append(day, width: 2, to: &out)
        out += "T"
        append(msOfDay / 3_600_000, width: 2, to: &out)
        out += ":"
        append(msOfDay / 60_000 % 60, width: 2, to: &out)
        out += ":"
        append(msOfDay / 1_000 % 60, width: 2, to: &out)
        out += "."
        append(msOfDay % 1_000, width: 3, to: &out)
        out += "Z"
        return out
    }

    /// `us` since the Unix epoch, with milliseconds.
    public static func iso8601(us: Int64) -> String {
        iso8601(ms: us >= 0 ? us / 1_000 : (us - 999) / 1_000)
    }

    /// Milliseconds since the Unix epoch of `2026-11-27T18:47:41.662Z` (the form written
    /// above; fractions of any length, or none); nil for anything else.
    public static func parseISO8601(_ text: String) -> Int64? {
        let bytes = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int64? {
            guard range.upperBound <= bytes.count else { return nil }
            var value: Int64 = 0
            for byte in bytes[range] {
                guard (48...57).contains(byte) else { return nil }
                value = value * 10 + Int64(byte - 48)
            }
            return value
        }
        func at(_ index: Int, _ char: Character) -> Bool { index < bytes.count && bytes[index] == char.asciiValue! }
        guard bytes.count >= 20, at(4, "-"), at(7, "-"), at(10, "T"), at(13, ":"), at(16, ":"), bytes.last == UInt8(ascii: "Z"),
              let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
              let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var ms: Int64 = 0
        if bytes.count > 20 {
            guard at(19, "."), bytes.count > 21, let fraction = number(20..<(bytes.count - 1)) else { return nil }
            let digits = bytes.count - 21
            ms = digits >= 3 ? fraction / Int64(pow10(digits - 3)) : fraction * Int64(pow10(3 - digits))
        } else if bytes.count != 20 {
            return nil
        }
        return days(fromCivil: year, month, day) * 86_400_000 + ((hour * 60 + minute) * 60 + second) * 1_000 + ms
    }

    private static func pow10(_ exponent: Int) -> Int64 {
        (0..<exponent).reduce(Int64(1)) { value, _ in value * 10 }
    }

    /// Days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil).
    static func days(fromCivil year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's civil_from_days).
    static func civil(fromDays days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    private static func append(_ value: Int64, width: Int, to out: inout String) {
        let digits = String(value)
        if digits.count < width { out += String(repeating: "0", count: width - digits.count) }
        out += digits
    }
}
