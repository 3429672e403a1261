import CLibSSH
import Foundation
import SSHCertificates

/// Moves keys and certificates between libssh's `ssh_key` and Gatehouse's own types through
/// their OpenSSH wire encodings, so every parse of untrusted bytes goes through Gatehouse's
/// strict parser rather than libssh's.
enum LibSSHKeys {
    /// The wire blob of a public key or certificate held by libssh. For a certificate libssh
    /// exports the whole certificate blob, which is what the validator needs.
    static func blob(of key: ssh_key) -> [UInt8]? {
        var b64: UnsafeMutablePointer<CChar>?
        guard ssh_pki_export_pubkey_base64(key, &b64) == SSH_OK, let b64 else { return nil }
        defer { ssh_string_free_char(b64) }
        guard let data = Data(base64Encoded: String(cString: b64)) else { return nil }
        return Array(data)
    }

    /// An ssh_key holding `privateKey` with `certificate` attached, for client authentication.
    /// The caller frees it with `ssh_key_free`.
    static func certifiedPrivateKey(_ privateKey: SSHPrivateKey, certificate: SSHCertificate) throws -> ssh_key {
        var priv: ssh_key?
        let pem = OpenSSHPrivateKeyFile.serialize(privateKey)
        guard ssh_pki_import_privkey_base64(pem, nil, nil, nil, &priv) == SSH_OK, let priv else {
            throw LibSSHError("importing the ephemeral key", detail: "libssh refused the key")
        }
        var cert: ssh_key?
        let certB64 = Data(certificate.blob).base64EncodedString()
        let type = ssh_key_type_from_name(certificate.key.algorithm.certificateTypeName)
        guard ssh_pki_import_cert_base64(certB64, type, &cert) == SSH_OK, let cert else {
            ssh_key_free(priv)
            throw LibSSHError("importing the ephemeral certificate", detail: "libssh refused the certificate")
        }
        defer { ssh_key_free(cert) }
        guard ssh_pki_copy_cert_to_privkey(cert, priv) == SSH_OK else {
            ssh_key_free(priv)
            throw LibSSHError("attaching the certificate to the ephemeral key", detail: "libssh refused")
        }
        return priv
    }
}
