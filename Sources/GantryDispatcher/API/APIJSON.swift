import Foundation
import GantryAPI
import OpenAPIRuntime

/// How the API writes JSON: the generated server's configuration, and an encoder that writes
/// the same form where the API writes JSON itself (a run in its event stream). Times are
/// `MillisecondDates`; fields without a value are left out.
enum APIJSON {
    static let configuration = Configuration(dateTranscoder: MillisecondDates(), jsonEncodingOptions: [.sortedKeys, .withoutEscapingSlashes])

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(MillisecondDates.text(date))
        }
        return encoder
    }()
}
