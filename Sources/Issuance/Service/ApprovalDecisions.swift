import Approvals
import Audit
import Foundation
import Refusals

/// Approvals over HTTP, authenticated by the same OIDC token checks as issuance:
///
/// - `POST /v1/approvals/{id}/decision` `{"decision": "approve"|"deny", "reason": "…"}`: the
///   token's identity (the key id the claim mapping gives it, `oidc:<sub>` as an alias) and its
///   groups decide as an approver. The store enforces four eyes and the scope's `approvers`.
/// - `GET /v1/approvals/{id}[?wait=SECONDS]`: the request's status, to the requester only (the
///   token must map to the key id that asked); `wait` holds at most 300 s, answering as soon as
///   the status changes.
public struct ApprovalDecisions: Sendable {
    public let issuer: CertificateIssuer
    public let store: any ApprovalStore

    public init(issuer: CertificateIssuer, store: any ApprovalStore) {
        self.issuer = issuer
        self.store = store
    }

    /// An HTTP answer: status and JSON body.
    public struct Answer: Sendable {
        public let status: Int
        public let body: String
    }

    /// Approval ids as the store makes them; anything else is not found before any work.
    static func isApprovalID(_ id: String) -> Bool {
        (1...128).contains(id.utf8.count) && id.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x41...0x5a).contains($0) || (0x61...0x7a).contains($0) || $0 == 0x2d || $0 == 0x5f }
    }

    public func decide(authorization: String?, id: String, body: [UInt8], peer: String) async -> Answer {
        guard Self.isApprovalID(id) else { return Answer(status: 404, body: ApprovalRefusal.notFound(id: String(id.prefix(64))).refusal.json()) }
        let identity: (keyID: String, subject: String, groups: [String])
        switch await identify(authorization) {
        case .failure(let refusal): return await refuse(refusal, id: id, peer: peer)
        case .success(let found): identity = found
        }
        guard body.count <= 16 * 1024, let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
              Set(object.keys).isSubset(of: ["decision", "reason"]), let decision = object["decision"] as? String,
              ["approve", "deny"].contains(decision) else {
            return await refuse(Refusal(.badRequest, check: "body", "the body must be {\"decision\": \"approve\" | \"deny\", \"reason\": \"…\"}"), id: id, peer: peer)
        }
        let reason = object["reason"] as? String ?? ""
        let approver = ApproverIdentity(id: identity.keyID, groups: identity.groups, aliases: ["oidc:\(identity.subject)"])
        do {
            let record = try store.decide(id, approve: decision == "approve", by: approver, reason: reason)
            return Answer(status: 200, body: ApprovalAnswer(record, now: store.now()).json)
        } catch let refusal as ApprovalRefusal {
            return Answer(status: Self.status(of: refusal), body: refusal.refusal.json())
        } catch {
            return Answer(status: 500, body: Refusals.Refusal(code: "internal_error", rule: "store", reason: "the decision could not be recorded: \(error)").json())
        }
    }

    public func status(authorization: String?, id: String, wait: String?, peer: String) async -> Answer {
        guard Self.isApprovalID(id) else { return Answer(status: 404, body: ApprovalRefusal.notFound(id: String(id.prefix(64))).refusal.json()) }
        let identity: (keyID: String, subject: String, groups: [String])
        switch await identify(authorization) {
        case .failure(let refusal): return Answer(status: refusal.status, body: refusal.refusal.json())
        case .success(let found): identity = found
        }
        var timeout: TimeInterval = 0
        if let wait {
            guard let seconds = Int(wait), seconds >= 0 else {
                return Answer(status: 400, body: Refusal(.badRequest, check: "wait", "wait takes whole seconds (at most 300)").refusal.json())
            }
            timeout = ApprovalWaiter.clamp(TimeInterval(seconds))
        }
        do {
            // Only the requester's own requests are found: another identity learns nothing.
            guard let record = try store.get(id), record.requester.keyID == identity.keyID else { throw ApprovalRefusal.notFound(id: id) }
            let answer = try await ApprovalWaiter(store: store).wait(for: id, as: record.requester, timeout: timeout)
            return Answer(status: 200, body: answer.json)
        } catch let refusal as ApprovalRefusal {
            return Answer(status: Self.status(of: refusal), body: refusal.refusal.json())
        } catch {
            return Answer(status: 500, body: Refusals.Refusal(code: "internal_error", rule: "store", reason: "the approval store could not be read: \(error)").json())
        }
    }

    /// The token's identity as the claim mapping gives it: the key id its certificates would
    /// carry, its subject, and its groups.
    private func identify(_ authorization: String?) async -> Result<(keyID: String, subject: String, groups: [String]), Refusal> {
        let token: String
        switch CertificateIssuer.bearer(authorization, limit: issuer.configuration.maxTokenBytes) {
        case .failure(let r): return .failure(r)
        case .success(let t): token = t
        }
        let verified: VerifiedToken
        switch await issuer.verifier.verify(token, now: UInt64(Date().timeIntervalSince1970)) {
        case .failure(let r): return .failure(r)
        case .success(let v): verified = v
        }
        let mapping = verified.issuer.mapping ?? issuer.configuration.mapping
        let groups = mapping.groupsClaim.strings(verified.claims) ?? []
        // Always the key id the mapping renders, whatever the token grants: that is what this
        // person's certificates carry, so four eyes compares like with like. No key id, no decision.
        switch mapping.renderKeyID(verified.claims) {
        case .success(let keyID): return .success((keyID, verified.subject, groups))
        case .failure(let r): return .failure(r)
        }
    }

    private func refuse(_ refusal: Refusal, id: String, peer: String) async -> Answer {
        _ = await issuer.audit.record(AuditEvent(actor: "anonymous", action: "approval.decide", object: "approval \(id.prefix(64))", outcome: .refused,
                                                 details: refusal.refusal.auditFields(["peer": peer])))
        return Answer(status: refusal.status, body: refusal.refusal.json())
    }

    static func status(of refusal: ApprovalRefusal) -> Int {
        switch refusal {
        case .notFound: return 404
        case .selfApproval, .approverNotListed: return 403
        case .reasonRequired: return 400
        default: return 409
        }
    }
}
