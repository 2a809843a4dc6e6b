import Hummingbird

/// Guards the routes that need a token: admits the bearer token (401 without one, 429 past its
/// rate), looks up its grant (401 when unknown or revoked) and puts both in the request context.
/// One per route, because a refusal is logged under the action the route performs.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = GantryRequestContext

    /// Where the token's grant is read.
    enum GrantLookup: Sendable {
        /// Here, before the route runs.
        case first
        /// By the route, in the same round trip as its data (`Authenticator.accept` completes it):
        /// `GET /v1/runs/{id}`, the most frequent request.
        case withRouteData
    }

    let authenticator: Authenticator
    /// The action refusals are logged under ("submit", "read", "approve", …).
    let action: String
    let grantLookup: GrantLookup

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let hash = try authenticator.tokenHash(of: request, action: action)
        context.tokenHash = hash
        if grantLookup == .first {
            context.grant = try await authenticator.grant(hash: hash, action: action)
        }
        return try await next(request, context)
    }
}

extension RouterMethods where Context == GantryRequestContext {
    /// A group whose routes need a token, refusals logged under `action`.
    func authenticated(
        _ action: String, by authenticator: Authenticator, grant lookup: AuthenticationMiddleware.GrantLookup = .first
    ) -> RouterGroup<Context> {
        group().add(middleware: AuthenticationMiddleware(authenticator: authenticator, action: action, grantLookup: lookup))
    }
}
