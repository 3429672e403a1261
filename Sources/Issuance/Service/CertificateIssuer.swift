import Audit
import CertificateAuthority
import Foundation
import JSONWriting
import Policy
import SSHCertificates

/// The issuance decision, independent of HTTP: bearer token and body in, certificate or refusal
/// out, every outcome audited before it is returned.
///
/// Order: sizes (cheap, before any parsing) → body → token → rate limit (per verified subject) →
/// claim mapping → lifetime → signing → audit. A failure to audit turns a signed certificate into
/// a 500: a certificate no one can trace back is not handed out.
public final class CertificateIssuer: Sendable {
    public let configuration: IssuanceConfiguration
    public let verifier: TokenVerifier
    public let authority: any SigningAuthority
    public let audit: AuditBatcher
    public let metrics: IssuanceMetrics
    let limiter: any IssuanceRateLimit
    let clock: @Sendable () -> Double
    /// The bastion's live scopes and targets, which task narrowing is checked against (nil: a
    /// standalone issuer, which refuses `targets` and `commands`).
    let taskPolicy: @Sendable () -> TaskPolicyView?
    /// Where serials come from: random 64-bit numbers, or the shared store's sequence.
    let serials: @Sendable () async throws -> UInt64

    public init(configuration: IssuanceConfiguration, verifier: TokenVerifier, authority: any SigningAuthority, audit: AuditBatcher,
                metrics: IssuanceMetrics = IssuanceMetrics(), clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 },
                taskPolicy: @escaping @Sendable () -> TaskPolicyView? = { nil },
                serials: @escaping @Sendable () async throws -> UInt64 = { UInt64.random(in: 1 ... .max) },
                rateLimit: (any IssuanceRateLimit)? = nil) {
        self.taskPolicy = taskPolicy
        self.serials = serials
        self.configuration = configuration
        self.verifier = verifier
        self.authority = authority
        self.audit = audit
        self.metrics = metrics
        limiter = rateLimit ?? RateLimiter(configuration.rateLimit)
        self.clock = clock
    }

    public func issue(authorization: String?, body: [UInt8], peer: String) async -> Result<IssuanceResponse, Refusal> {
        let started = clock()
        let result = await decide(authorization: authorization, body: body, peer: peer)
        switch result {
        case .success: metrics.issued(seconds: clock() - started)
        case .failure(let r): metrics.refused(r.code, seconds: clock() - started)
        }
        return result
    }

    /// A refusal decided before the request reached `issue` (the HTTP layer's body limit):
    /// audited and counted like every other.
    public func refuseEarly(_ refusal: Refusal, peer: String) async -> Refusal {
        metrics.refused(refusal.code, seconds: 0)
        _ = await audit.record(AuditEvent(actor: "anonymous", action: "cert.issue", object: "user certificate", outcome: .refused,
                                          details: refusal.refusal.auditFields(["peer": peer])))
        return refusal
    }

    private func decide(authorization: String?, body: [UInt8], peer: String) async -> Result<IssuanceResponse, Refusal> {
        var details = ["peer": peer]
        func refuse(_ r: Refusal) async -> Result<IssuanceResponse, Refusal> {
            details = r.refusal.auditFields(details)
            _ = await audit.record(AuditEvent(actor: details["sub"].map { "oidc:\($0)" } ?? "anonymous", action: "cert.issue",
                                              object: "user certificate", outcome: .refused, details: details))
            return .failure(r)
        }
        let token: String
        switch Self.bearer(authorization, limit: configuration.maxTokenBytes) {
        case .failure(let r): return await refuse(r)
        case .success(let t): token = t
        }
        guard body.count <= configuration.maxBodyBytes else {
            return await refuse(Refusal(.tooLarge, check: "body", "the request body is \(body.count) bytes; at most \(configuration.maxBodyBytes) are accepted"))
        }
        let request: IssuanceRequest
        do throws(Refusal) { request = try IssuanceRequest(json: body) } catch { return await refuse(error) }
        details["subject_key"] = request.publicKey.fingerprint
        // Computed once: it goes into the audit record, the certificate and the answer.
        let context = request.context.flatMap { $0.isEmpty ? nil : $0.extensionValue }
        if let context { details["context"] = context }
        let now = clock()
        let verified: VerifiedToken
        switch await verifier.verify(token, now: UInt64(now)) {
        case .failure(let r): return await refuse(r)
        case .success(let v): verified = v
        }
        details["iss"] = verified.issuer.issuer
        details["sub"] = verified.subject
        if let jti = verified.tokenID { details["jti"] = jti }
        let retryAfter: Int?
        do { retryAfter = try await limiter.take(verified.issuer.issuer + "\u{0}" + verified.subject, now: now) } catch {
            return await refuse(Refusal(.storeUnavailable, check: "rate_limit", "the subject's rate limit cannot be counted: \(error)"))
        }
        if let retry = retryAfter {
            return await refuse(Refusal(.rateLimited, check: "rate_limit", "subject \"\(verified.subject)\" exceeded \(configuration.rateLimit.perMinute) certificates per minute (burst \(configuration.rateLimit.burst)); retry in \(retry) s", retryAfter: retry))
        }
        let grant: Grant
        switch (verified.issuer.mapping ?? configuration.mapping).grant(for: verified.claims) {
        case .failure(let r):
            for (k, v) in Self.claimSummary(verified.claims, mapping: verified.issuer.mapping ?? configuration.mapping) { details["claim." + k] = v }
            return await refuse(r)
        case .success(let g): grant = g
        }
        for (k, v) in grant.decidingClaims { details["claim." + k] = v }
        if let prompt = request.context?.prompt { Self.recordPrompt(prompt, mode: configuration.auditPrompt, limit: configuration.auditPromptMaxBytes, into: &details) }
        let narrowed: NarrowedGrant
        switch TaskNarrowingCheck.narrow(request, granted: grant.scopes, view: taskPolicy()) {
        case .failure(let r):
            Self.describeNarrowing(request, into: &details)
            return await refuse(r)
        case .success(let n): narrowed = n
        }
        Self.describeNarrowing(request, into: &details)
        // Lifetime: the shortest of what was asked, what is allowed, and what the token has left,
        // so a certificate never outlives the proof it was issued on.
        let requested = request.ttl ?? configuration.defaultTTL
        let remaining = verified.expiry > UInt64(now) ? verified.expiry - UInt64(now) : 0
        let lifetime = min(requested, configuration.maxTTL, remaining)
        details["lifetime"] = String(lifetime)
        guard lifetime >= 1 else {
            return await refuse(Refusal(.tokenExpired, check: "exp", "the token has no lifetime left to give a certificate (it expires at \(verified.expiry))"))
        }
        var extensions = CertificateTemplate.defaultUserExtensions
        extensions.append(CertificateOption(name: CertificateExtension.scopes, value: narrowed.scopes.joined(separator: ",")))
        if let context { extensions.append(CertificateOption(name: CertificateExtension.context, value: context)) }
        extensions += TaskExtensions.options(narrowed.task)
        let (after, before) = CertificateTemplate.validFor(lifetime, from: UInt64(now))
        let serial: UInt64
        do { serial = try await serials() } catch {
            return await refuse(Refusal(.storeUnavailable, check: "serial", "no certificate serial could be taken: \(error)"))
        }
        let template = CertificateTemplate(key: request.publicKey, type: .user, serial: serial, keyID: grant.keyID,
                                           principals: grant.principals, validAfter: after, validBefore: before, extensions: extensions)
        let certificate: SSHCertificate
        let caKey: SSHPrivateKey
        do {
            caKey = try authority.userSigningKey()
            // The 32-byte nonce from four 64-bit draws instead of 32 one-byte ones (each a
            // getrandom call).
            var random = SystemRandomNumberGenerator()
            var nonce: [UInt8] = []
            nonce.reserveCapacity(32)
            for _ in 0..<4 { withUnsafeBytes(of: random.next() as UInt64) { nonce.append(contentsOf: $0) } }
            certificate = try template.sign(with: caKey, nonce: nonce)
            // The same check the bastion makes at login, so a malformed scope never leaves here.
            _ = try CertificatePermissions(certificate: certificate)
        } catch {
            return await refuse(Refusal(.internalError, check: "sign", "the certificate could not be signed: \(error)"))
        }
        for (k, v) in CAStore.issuanceDetails(certificate, caKey: caKey.publicKey) { details[k] = v }
        let audited = await audit.record(AuditEvent(actor: "oidc:\(verified.subject)", action: "cert.issue",
                                                    object: "user certificate \"\(certificate.keyID)\"", outcome: .success, details: details))
        guard audited else {
            return .failure(Refusal(.internalError, check: "audit", "the issuance could not be audited, so no certificate is returned"))
        }
        return .success(IssuanceResponse(certificate: certificate.openSSHLine, serial: certificate.serial, key_id: certificate.keyID,
                                         principals: certificate.principals, scopes: narrowed.scopes, context: context ?? "",
                                         valid_after: certificate.validAfter, valid_before: certificate.validBefore,
                                         bastion_addresses: configuration.bastionAddresses))
    }

    /// What the request asked to narrow to, for the audit record (granted or refused).
    static func describeNarrowing(_ request: IssuanceRequest, into details: inout [String: String]) {
        if let scopes = request.scopes { details["requested_scopes"] = scopes.joined(separator: ",") }
        if let targets = request.targets { details["task_targets"] = String(targets.joined(separator: ",").prefix(4096)) }
        if let commands = request.commands { details["task_commands"] = String(TaskExtensions.jsonArray(commands).prefix(16384)) }
        if let budget = request.maxSessions { details["task_max_sessions"] = String(budget) }
    }

    /// The prompt's text in the issuance record, once per certificate and bounded: whole when it
    /// fits, else its first `limit` bytes (on a character boundary) and a note that it was cut.
    static func recordPrompt(_ prompt: String, mode: PromptAuditMode, limit: Int, into details: inout [String: String]) {
        switch mode {
        case .none, .hash: return
        case .full:
            let bytes = prompt.utf8
            if bytes.count <= limit {
                details["prompt"] = prompt
            } else {
                var cut = limit
                while cut > 0, let i = bytes.index(bytes.startIndex, offsetBy: cut, limitedBy: bytes.endIndex), (bytes[i] & 0xC0) == 0x80 { cut -= 1 }
                details["prompt"] = String(decoding: Array(bytes.prefix(cut)), as: UTF8.self)
                details["prompt_truncated"] = "\(bytes.count) bytes, first \(cut) kept"
            }
        }
    }

    /// `Authorization: Bearer <token>`, exactly: one scheme (case-insensitive, RFC 9110), one
    /// space, a token of token68 characters within the size limit.
    static func bearer(_ header: String?, limit: Int) -> Result<String, Refusal> {
        guard let header, !header.isEmpty else {
            return .failure(Refusal(.missingToken, check: "authorization", "no Authorization header; send \"Authorization: Bearer <token>\""))
        }
        guard header.utf8.count <= limit + 7 else {
            return .failure(Refusal(.tooLarge, check: "authorization", "the bearer token is \(header.utf8.count - 7) bytes; at most \(limit) are accepted"))
        }
        // Byte-level split: Character-level splitting of a 1 KiB token is measurably slow.
        let utf8 = Array(header.utf8)
        guard utf8.count > 7, utf8[6] == UInt8(ascii: " "), String(decoding: utf8[0..<6], as: UTF8.self).lowercased() == "bearer",
              !utf8[7...].contains(UInt8(ascii: " ")) else {
            return .failure(Refusal(.missingToken, check: "authorization", "the Authorization header is not \"Bearer <token>\""))
        }
        return .success(String(decoding: utf8[7...], as: UTF8.self))
    }

    /// The mapped claims of a refused token, for the audit record: what was there to decide on.
    static func claimSummary(_ claims: [String: JSONValue], mapping: ClaimMapping) -> [String: String] {
        var out: [String: String] = [:]
        if let v = mapping.groupsClaim.lookup(claims) { out[mapping.groupsClaim.description] = String(v.compact.prefix(512)) }
        if let p = mapping.scopesClaim, let v = p.lookup(claims) { out[p.description] = String(v.compact.prefix(512)) }
        return out
    }
}
