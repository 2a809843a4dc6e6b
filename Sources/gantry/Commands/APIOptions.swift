import ArgumentParser
import Foundation
import GantryCore

/// Where the dispatcher's API is and the token to use, for the run commands.
struct APIOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The dispatcher's API.", discussion: "Default: $GANTRY_URL, else http://127.0.0.1:8080."))
    var url: String?

    @Option(name: .customLong("token-file"), help: ArgumentHelp("A file holding the API token.", discussion: "Default: $GANTRY_TOKEN. The token is never accepted as a flag (it would show in ps)."))
    var tokenFile: String?

    func client() throws -> APIClient {
        let base = (url ?? ProcessInfo.processInfo.environment["GANTRY_URL"] ?? "http://127.0.0.1:8080")
        guard base.hasPrefix("http://") || base.hasPrefix("https://") else {
            throw UsageError("--url / GANTRY_URL '\(base)': give http://HOST:PORT or https://HOST:PORT")
        }
        var token = ProcessInfo.processInfo.environment["GANTRY_TOKEN"]
        if let tokenFile {
            token = try InputFile.read(tokenFile, flag: "--token-file", limit: 64 << 10).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard let token, !token.isEmpty else {
            throw UsageError("no API token: set GANTRY_TOKEN or pass --token-file (an admin makes one with gantry token create)")
        }
        let caFile = ProcessInfo.processInfo.environment["GANTRY_CA_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        if let caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            throw UsageError("GANTRY_CA_FILE \(caFile): cannot read it (a PEM file of the CA that signed the API's certificate)")
        }
        return try APIClient(base: base.hasSuffix("/") ? String(base.dropLast()) : base, token: token, caFile: caFile)
    }
}

/// A refusal or failure from the API, as one line.
struct APIFailure: Error, CustomStringConvertible {
    /// The HTTP status, 0 when the API was not reached.
    let status: Int
    let message: String
    var description: String { message }

    /// A refusal (the request was understood and said no), as opposed to an outage.
    var isRefusal: Bool { (400..<500).contains(status) }
}
