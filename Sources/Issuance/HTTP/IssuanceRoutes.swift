import Foundation
import Hummingbird
import NIOCore
import SSHCertificates
import CertificateAuthority

/// The request context: Hummingbird's core storage plus the peer address, for the audit log.
public struct IssuanceRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let peer: String
    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        peer = source.channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "unknown"
    }
    /// Bodies are bounded by the issuance configuration, not Hummingbird's 2 MiB default.
    public var maxUploadSize: Int { 64 * 1024 }
}

/// The HTTP surface: `POST /v1/certificates`, the CA keys, the KRL, health and metrics.
public enum IssuanceRoutes {
    public static func router(issuer: CertificateIssuer, metrics: MetricsPage, approvals: ApprovalDecisions? = nil,
                              health: @escaping HealthSource = { HealthReport() }) -> Router<IssuanceRequestContext> {
        let router = Router(context: IssuanceRequestContext.self)
        if let approvals {
            router.post("/v1/approvals/:id/decision") { request, context -> Response in
                var request = request
                let id = context.parameters.get("id") ?? ""
                guard let body = try? await request.collectBody(upTo: 16 * 1024) else {
                    return refusalResponse(Refusal(.tooLarge, check: "body", "the decision body is larger than 16384 bytes"))
                }
                let answer = await approvals.decide(authorization: request.headers[.authorization], id: id, body: Array(buffer: body), peer: context.peer)
                return json(HTTPResponse.Status(code: answer.status), Data(answer.body.utf8))
            }
            router.get("/v1/approvals/:id") { request, context -> Response in
                let answer = await approvals.status(authorization: request.headers[.authorization], id: context.parameters.get("id") ?? "",
                                                    wait: request.uri.queryParameters.get("wait"), peer: context.peer)
                return json(HTTPResponse.Status(code: answer.status), Data(answer.body.utf8))
            }
        }
        let limit = issuer.configuration.maxBodyBytes
        router.post("/v1/certificates") { request, context -> Response in
            var request = request
            let body: [UInt8]
            do {
                body = Array(buffer: try await request.collectBody(upTo: limit))
            } catch {
                return refusalResponse(await issuer.refuseEarly(Refusal(.tooLarge, check: "body", "the request body is larger than \(limit) bytes"), peer: context.peer))
            }
            switch await issuer.issue(authorization: request.headers[.authorization], body: body, peer: context.peer) {
            case .success(let answer): return json(.ok, Data(answer.json.utf8))
            case .failure(let refusal): return refusalResponse(refusal)
            }
        }
        for name in ["user", "host", "target"] {
            router.get("/v1/ca/\(name)") { request, _ -> Response in
                let authority = AuthorityPaths.authority(name)
                let keys = issuer.authority.trustedKeys(authority)
                let format = request.uri.queryParameters.get("format") ?? "keys"
                let lines: [String]
                switch format {
                case "keys": lines = keys.map { "\($0.openSSHLine) gatehouse-\(name)-ca" }
                case "known_hosts" where name == "host": lines = keys.map { "@cert-authority * \($0.openSSHLine) gatehouse-host-ca" }
                default:
                    return refusalResponse(Refusal(.badRequest, check: "format", "format must be \"keys\"\(name == "host" ? " or \"known_hosts\"" : "")"))
                }
                return text(lines.joined(separator: "\n") + "\n")
            }
        }
        router.get("/v1/krl") { _, _ -> Response in
            let bytes = issuer.authority.revocationList().serialized()
            return Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        router.get("/healthz") { _, _ -> Response in
            let report = await health()
            return Response(status: report.ready ? .ok : .serviceUnavailable, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                            body: .init(byteBuffer: ByteBuffer(string: report.json)))
        }
        router.get("/metrics") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: metrics.contentType, .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(string: metrics.render())))
        }
        return router
    }

    static func json(_ status: HTTPResponse.Status, _ data: Data, headers extra: HTTPFields = [:]) -> Response {
        var headers: HTTPFields = [.contentType: "application/json", .cacheControl: "no-store"]
        headers.append(contentsOf: extra)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func text(_ s: String) -> Response {
        Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: s)))
    }

    /// The shared refusal shape `{"code", "reason", "rule"}` with the status the refusal calls
    /// for; 401 carries the RFC 6750 challenge, 429 a Retry-After.
    static func refusalResponse(_ r: Refusal) -> Response {
        var headers: HTTPFields = [:]
        if r.status == 401 {
            let escaped = r.message.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "'")
            headers[.wwwAuthenticate] = "Bearer error=\"invalid_token\", error_description=\"\(r.code.rawValue): \(escaped.prefix(200))\""
        }
        if let retry = r.retryAfter { headers[.retryAfter] = String(retry) }
        return json(HTTPResponse.Status(code: r.status), Data(r.refusal.json().utf8), headers: headers)
    }
}

enum AuthorityPaths {
    static func authority(_ name: String) -> AuthorityName {
        switch name {
        case "host": return .host
        case "target": return .target
        default: return .user
        }
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }
}
