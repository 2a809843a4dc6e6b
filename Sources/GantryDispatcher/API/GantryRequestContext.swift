import GantryCore
import Hummingbird

/// The request context of the API's routes: Hummingbird's core storage, and who sent the
/// request once `AuthenticationMiddleware` has found out (nil on the routes that need no token).
struct GantryRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// SHA-256 of the bearer token, admitted by its rate limit: what open streams are counted by.
    var tokenHash: String?
    /// What the token may do. Nil behind a middleware that leaves the lookup to its route
    /// (`GET /v1/runs/{id}` reads the token with the run, in one round trip).
    var grant: Grant?

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
    }

    /// The grant `AuthenticationMiddleware` put here; a route registered without it is a bug (500, logged).
    func requireGrant() throws -> Grant {
        guard let grant else { throw RouteWithoutAuthentication(needs: "grant") }
        return grant
    }

    /// The token hash `AuthenticationMiddleware` put here; a route registered without it is a bug (500, logged).
    func requireTokenHash() throws -> String {
        guard let tokenHash else { throw RouteWithoutAuthentication(needs: "token hash") }
        return tokenHash
    }
}

/// A route that needs a token was registered outside `AuthenticationMiddleware`.
struct RouteWithoutAuthentication: Error, CustomStringConvertible {
    let needs: String
    var description: String { "the route needs the request's \(needs) but is not behind AuthenticationMiddleware" }
}
