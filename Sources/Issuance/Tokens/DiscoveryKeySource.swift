import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Fetches an issuer's JWKS over HTTP(S): from `jwks_uri` when configured, otherwise through
/// OIDC discovery, whose `issuer` must equal the configured one (OIDC Discovery §4.3) so a
/// discovery document cannot redirect trust to another issuer's keys.
public struct DiscoveryKeySource: KeySetSource {
    public let issuer: String
    public let discoveryURL: String
    public let jwksURI: String?
    let client: HTTPClient
    /// A key set or discovery document larger than this is refused.
    static let maxDocumentBytes = 1 << 20

    public init(issuer: IssuerConfiguration, client: HTTPClient) {
        self.issuer = issuer.issuer
        discoveryURL = issuer.discoveryURL
        jwksURI = issuer.jwksURI
        self.client = client
    }

    public func fetchKeySet() async throws -> [UInt8] {
        let uri: String
        if let jwksURI { uri = jwksURI } else {
            let document = try await get(discoveryURL)
            guard case .object(let o) = try JSONDecoder().decode(JSONValue.self, from: Data(document)) else {
                throw KeySetError("\(discoveryURL) is not a JSON object")
            }
            guard o["issuer"]?.string == issuer else {
                throw KeySetError("\(discoveryURL) names issuer \(o["issuer"]?.compact ?? "none"), not \(issuer)")
            }
            guard let found = o["jwks_uri"]?.string else { throw KeySetError("\(discoveryURL) has no jwks_uri") }
            uri = found
        }
        return try await get(uri)
    }

    func get(_ url: String) async throws -> [UInt8] {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/json")
        let response = try await client.execute(request, timeout: .seconds(10))
        guard response.status == .ok else { throw KeySetError("GET \(url) answered \(response.status.code)") }
        let body = try await response.body.collect(upTo: Self.maxDocumentBytes)
        return Array(buffer: body)
    }
}
