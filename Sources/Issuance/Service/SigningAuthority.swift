import CertificateAuthority
import SSHCertificates

/// What the issuance service needs from the certificate authorities. The server passes the
/// live store (which follows `gatehouse ca rotate` and `cert revoke` from other processes);
/// Issuance does not know how the store is kept.
public protocol SigningAuthority: Sendable {
    /// The user CA's current signing key.
    func userSigningKey() throws -> SSHPrivateKey
    /// The public keys an authority trusts now (published at /v1/ca/…).
    func trustedKeys(_ name: AuthorityName) -> [SSHPublicKey]
    /// The current revocation list (published at /v1/krl).
    func revocationList() -> KeyRevocationList
}

/// A fixed store, for tests and for the CLI when no live reload is wanted.
public final class StoreAuthority: SigningAuthority, @unchecked Sendable {
    // CAStore is not thread-safe; its reads here do not mutate and the store is never reloaded.
    let store: CAStore
    public init(store: CAStore) { self.store = store }
    public func userSigningKey() throws -> SSHPrivateKey { store.signingKey(.user) }
    public func trustedKeys(_ name: AuthorityName) -> [SSHPublicKey] { store.trustedPublicKeys(name) }
    public func revocationList() -> KeyRevocationList { store.revocationList() }
}
