import CLibSSH
import Foundation
import SSHCertificates

extension FrontConnection {
    /// libssh's public-key callback. OpenSSH first probes with the key alone
    /// (`SSH_PUBLICKEY_STATE_NONE`, answered with PK_OK on success), then sends the signed
    /// request (`SSH_PUBLICKEY_STATE_VALID`, libssh has checked the signature). Both run the
    /// whole validator against the live CA store: only a certificate OpenSSH itself would accept
    /// gets in. Refusals are audited once, at the probe or at the signed request.
    func authenticate(user: String, key: ssh_key?, state: CChar) -> Int32 {
        let denied = Int32(SSH_AUTH_DENIED.rawValue)
        let signed = Int32(state) == SSH_PUBLICKEY_STATE_VALID.rawValue
        guard Int32(state) == SSH_PUBLICKEY_STATE_NONE.rawValue || signed else {
            failedAuthentications += 1
            audit("ssh.login", "target \"\(user)\"", .refused, ["reason": "bad signature"])
            return denied
        }
        guard agent == nil else { return denied }
        guard TargetName.isValid(user) else {
            failedAuthentications += 1
            audit("ssh.login", "user name", .refused, ["reason": "user name is not a valid target name", "user": String(user.prefix(80))])
            return denied
        }
        targetName = user
        guard let key, let blob = LibSSHKeys.blob(of: key) else {
            failedAuthentications += 1
            audit("ssh.login", "target \"\(user)\"", .refused, ["reason": "key could not be read"])
            return denied
        }
        if let problem = context.authorities.refresh() {
            logger.error("CA store reload failed; keeping the last good trust", metadata: ["error": "\(problem)"])
        }
        let validation = ValidationContext(now: UInt64(Date().timeIntervalSince1970), peerAddress: peerAddress,
                                           trustedCAs: context.authorities.trusted(.user), revocations: context.authorities.revocations)
        switch CertificateValidator.openSSHUser(signatureCache: context.signatureCache).validate(offeredKeyBlob: blob, in: validation) {
        case .failure(let refusal):
            failedAuthentications += 1
            var details = ["reason": refusal.description, "code": refusal.code, "key": SSHPublicKey.fingerprint(ofBlob: blob)]
            if let certificate = try? SSHCertificate(blob: blob) {
                details["cert_key_id"] = certificate.keyID
                details["cert_serial"] = String(certificate.serial)
            }
            logger.info("key refused", metadata: ["reason": "\(refusal)", "target": "\(user)"])
            // Clients offer every key they hold, plain ones first; a refused probe is kept and
            // audited with the connection's outcome, so one login is one decision in the log.
            probeRefusals.append(details)
            if signed { auditLoginRefusal(target: user) }
            return denied
        case .success(let validated):
            guard signed else { return Int32(SSH_AUTH_SUCCESS.rawValue) }
            agent = validated
            let c = validated.certificate
            var details = ["principals": c.principals.joined(separator: ","), "scopes": validated.permissions.scopes.joined(separator: ","),
                           "context": validated.permissions.context ?? "", "ca": c.signatureKey.fingerprint,
                           "valid_before": Timestamps.format(c.validBefore)]
            if !probeRefusals.isEmpty { details["keys_refused_first"] = probeRefusals.map { "\($0["key"] ?? "?") (\($0["code"] ?? "?"))" }.joined(separator: ", ") }
            probeRefusals.removeAll()
            audit("ssh.login", "target \"\(user)\"", .success, details)
            logger.info("login accepted", metadata: ["key_id": "\(c.keyID)", "target": "\(user)"])
            releaseStartupSlot()
            return Int32(SSH_AUTH_SUCCESS.rawValue)
        }
    }

    /// Audits what libssh refuses on its own: password and keyboard-interactive logins,
    /// port forwarding in both directions, X11, unknown channel types and requests.
    func unhandled(_ message: ssh_message) {
        let type = ssh_message_type(message), subtype = ssh_message_subtype(message)
        switch type {
        case Int32(SSH_REQUEST_AUTH.rawValue):
            let method: String
            switch subtype {
            case Int32(SSH_AUTH_METHOD_NONE): return  // every client asks which methods exist first
            case Int32(SSH_AUTH_METHOD_PASSWORD): method = "password"
            case Int32(SSH_AUTH_METHOD_INTERACTIVE): method = "keyboard-interactive"
            case Int32(SSH_AUTH_METHOD_HOSTBASED): method = "hostbased"
            case Int32(SSH_AUTH_METHOD_GSSAPI_MIC): method = "gssapi-with-mic"
            default: method = "method \(subtype)"
            }
            failedAuthentications += 1
            audit("ssh.login", "\(method) authentication", .refused, ["reason": "only certificate authentication is accepted"])
        case Int32(SSH_REQUEST_CHANNEL_OPEN.rawValue):
            switch subtype {
            case Int32(SSH_CHANNEL_DIRECT_TCPIP.rawValue):
                let host = ssh_message_channel_request_open_destination(message).map { String(cString: $0) } ?? "?"
                let port = ssh_message_channel_request_open_destination_port(message)
                refuseRequest(kind: "port-forwarding-local", detail: "direct-tcpip to \(host):\(port) (ssh -L / -D)")
            case Int32(SSH_CHANNEL_X11.rawValue): refuseRequest(kind: "x11", detail: "x11 channel")
            case Int32(SSH_CHANNEL_SESSION.rawValue): refuseRequest(kind: "session", detail: "a second session channel on one connection")
            default: refuseRequest(kind: "channel", detail: "channel type \(subtype)")
            }
        case Int32(SSH_REQUEST_CHANNEL.rawValue):
            switch subtype {
            case Int32(SSH_CHANNEL_REQUEST_X11.rawValue): refuseRequest(kind: "x11", detail: "x11-req (ssh -X)")
            case Int32(SSH_CHANNEL_REQUEST_PTY.rawValue), Int32(SSH_CHANNEL_REQUEST_EXEC.rawValue), Int32(SSH_CHANNEL_REQUEST_SHELL.rawValue),
                 Int32(SSH_CHANNEL_REQUEST_SUBSYSTEM.rawValue), Int32(SSH_CHANNEL_REQUEST_ENV.rawValue), Int32(SSH_CHANNEL_REQUEST_WINDOW_CHANGE.rawValue):
                // Reaches here only when refused by our own callback, which audited it.
                return
            default: refuseRequest(kind: "channel-request", detail: "unknown channel request")
            }
        case Int32(SSH_REQUEST_GLOBAL.rawValue):
            switch subtype {
            case Int32(SSH_GLOBAL_REQUEST_TCPIP_FORWARD.rawValue):
                let host = ssh_message_global_request_address(message).map { String(cString: $0) } ?? "?"
                refuseRequest(kind: "port-forwarding-remote", detail: "tcpip-forward \(host):\(ssh_message_global_request_port(message)) (ssh -R)")
            case Int32(SSH_GLOBAL_REQUEST_KEEPALIVE.rawValue), Int32(SSH_GLOBAL_REQUEST_CANCEL_TCPIP_FORWARD.rawValue): return
            default: return  // e.g. hostkeys-00@openssh.com, no-more-sessions@openssh.com: harmless
            }
        default:
            return
        }
    }

    /// One audit event for a login that failed, naming the last refusal and every key tried.
    func auditLoginRefusal(target: String) {
        // The certificate's refusal says more than the plain keys offered beside it.
        guard var details = probeRefusals.last(where: { $0["code"] != "not-a-certificate" }) ?? probeRefusals.last else { return }
        if probeRefusals.count > 1 { details["keys_refused"] = probeRefusals.map { "\($0["key"] ?? "?") (\($0["code"] ?? "?"))" }.joined(separator: ", ") }
        probeRefusals.removeAll()
        audit("ssh.login", "target \"\(target)\"", .refused, details)
    }

    func refuseRequest(kind: String, detail: String) {
        audit("session.request", kind, .refused, ["request": detail, "target": targetName, "reason": "not allowed through Gatehouse"])
        logger.info("request refused", metadata: ["kind": "\(kind)", "detail": "\(detail)"])
    }
}
