import GantryCore

/// Who sent the request being handled. The handlers generated from openapi.yaml see no
/// Hummingbird context, so `AuthenticationMiddleware` binds the caller to the request's task,
/// and a handler reads it with `APICaller.current()`.
struct APICaller: Sendable {
    /// SHA-256 of the bearer token, admitted by its rate limit: what open streams are counted by.
    var tokenHash: String
    /// What the token may do. Nil for an operation that reads the token with its own data
    /// (`getRun`: one round trip); the handler completes it with `Authenticator.accept`.
    var grant: Grant?

    @TaskLocal static var bound: APICaller?

    /// The caller `AuthenticationMiddleware` bound; an operation it does not guard is a bug (500, logged).
    static func current() throws -> APICaller {
        guard let bound else { throw OperationWithoutAuthentication(needs: "caller") }
        return bound
    }

    /// The caller's grant, which the middleware looked up.
    static func grant() throws -> Grant {
        guard let grant = try current().grant else { throw OperationWithoutAuthentication(needs: "grant") }
        return grant
    }
}

/// An operation that needs a token was reached without `AuthenticationMiddleware` binding its caller.
struct OperationWithoutAuthentication: Error, CustomStringConvertible {
    let needs: String
    var description: String { "the operation needs the request's \(needs) but AuthenticationMiddleware did not bind one" }
}
