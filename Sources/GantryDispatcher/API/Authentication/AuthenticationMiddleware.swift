import Foundation
import HTTPTypes
import OpenAPIRuntime

/// Guards the operations that need a token: admits the bearer token (401 without one, 429 past
/// its rate), looks up its grant (401 when unknown or revoked) and binds both to the request's
/// task as the `APICaller`. Each operation's refusals are logged under the action it performs.
struct AuthenticationMiddleware: ServerMiddleware {
    /// Where the token's grant is read.
    enum GrantLookup: Sendable {
        /// Here, before the handler runs.
        case first
        /// By the handler, in the same round trip as its data (`Authenticator.accept` completes
        /// it): `getRun`, the most frequent request.
        case withRouteData
    }

    let authenticator: Authenticator

    /// The action each guarded operation's refusals are logged under, and where its grant is
    /// read; an operation missing here needs no token (health, readiness, this document).
    static let guarded: [String: (action: String, lookup: GrantLookup)] = [
        "submitRun": ("submit", .first),
        "listRuns": ("list", .first),
        "getRun": ("read", .withRouteData),
        "followRun": ("read", .first),
        "getStepLog": ("read", .first),
        "approveRun": ("approve", .first),
        "rejectRun": ("reject", .first),
        "cancelRun": ("cancel", .first),
        "retryRun": ("retry", .first),
        "listEnvironments": ("environments", .first),
        "getEnvironment": ("environments", .first),
        "getFleet": ("fleet", .first),
        "drainWorker": ("drain", .first),
        "listQueues": ("queues", .first),
        "pauseQueue": ("pause", .first),
        "resumeQueue": ("resume", .first),
    ]

    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, metadata: ServerRequestMetadata, operationID: String,
        next: (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        guard let (action, lookup) = Self.guarded[operationID] else {
            return try await next(request, body, metadata)
        }
        let hash = try authenticator.tokenHash(authorization: request.headerFields[.authorization], action: action)
        let grant = lookup == .first ? try await authenticator.grant(hash: hash, action: action) : nil
        return try await APICaller.$bound.withValue(APICaller(tokenHash: hash, grant: grant)) {
            try await next(request, body, metadata)
        }
    }
}
