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
