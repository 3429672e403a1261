import Audit
import Foundation
import SSHCertificates

extension CAStore {
    /// Moves an authority to its next phase: standby → init → update → standby (retire).
    /// Retiring before the grace period has passed is refused unless `force`.
    @discardableResult
    public func rotate(_ name: AuthorityName, actor: String, force: Bool = false, now: Date = Date(), algorithm: SSHKeyAlgorithm? = nil) throws -> RotationPhase {
        var state = stateOf(name)
        var retiredKeyID: String?
        switch state.phase {
        case .standby:
            let current = signingKey(name).algorithm
            let key = try SSHPrivateKey.generate(algorithm ?? current, comment: "gatehouse-\(name.rawValue)-ca")
            let stored = try Self.writeKey(key, root: root, name: name, role: .next)   // key file before state
            state.keys.append(stored)
            state.phase = .initialized
        case .initialized:
            state.keys = state.keys.map { var k = $0; k.role = k.role == .active ? .previous : .active; return k }
            state.phase = .updating
            state.updateStarted = now
        case .updating:
            let allowedAt = state.updateStarted!.addingTimeInterval(state.gracePeriod)
            if now < allowedAt && !force {
                throw CAStoreError("retiring the previous \(name.rawValue) CA key is allowed from \(ISO8601DateFormatter().string(from: allowedAt)) (grace period \(Int(state.gracePeriod)) s, the longest certificate lifetime); use --force to retire now and invalidate certificates it signed")
            }
            retiredKeyID = state.key(.previous)?.id
            state.keys.removeAll { $0.role == .previous }
            state.phase = .standby
            state.updateStarted = nil
        }
        state.changed = now
        try commit(state, name)
        if let retiredKeyID { unlink(Self.keyPath(root, name, retiredKeyID)) }          // file after state
        try audit.append(AuditEvent(actor: actor, action: "ca.rotate", object: name.rawValue, outcome: .success,
                                    details: ["phase": state.phase.rawValue, "signing": state.signing!.fingerprint, "forced": force && retiredKeyID != nil ? "true" : "false"]))
        return state.phase
    }

    /// Back to the old key signing, from init or update; the new key leaves trust.
    public func rollback(_ name: AuthorityName, actor: String, now: Date = Date()) throws {
        var state = stateOf(name)
        let dropped: StoredKey
        switch state.phase {
        case .standby: throw CAStoreError("the \(name.rawValue) CA is not rotating; there is nothing to roll back")
        case .initialized:
            dropped = state.key(.next)!
            state.keys.removeAll { $0.role == .next }
        case .updating:
            dropped = state.key(.active)!
            state.keys.removeAll { $0.role == .active }
            state.keys = state.keys.map { var k = $0; k.role = .active; return k }
            state.updateStarted = nil
        }
        state.phase = .standby
        state.changed = now
        try commit(state, name)
        unlink(Self.keyPath(root, name, dropped.id))
        try audit.append(AuditEvent(actor: actor, action: "ca.rollback", object: name.rawValue, outcome: .success,
                                    details: ["dropped": dropped.fingerprint, "signing": state.signing!.fingerprint]))
    }

    /// Adopts an existing CA key (e.g. made by ssh-keygen) as the signing key. Only in standby;
    /// the key it replaces stays trusted as `previous` through an update phase, so certificates
    /// it signed keep working until the grace period ends and `rotate` retires it.
    public func importKey(_ key: SSHPrivateKey, as name: AuthorityName, actor: String, now: Date = Date()) throws {
        var state = stateOf(name)
        guard state.phase == .standby else { throw CAStoreError("the \(name.rawValue) CA is rotating (\(state.phase.rawValue)); finish or roll back first") }
        let stored = try Self.writeKey(key, root: root, name: name, role: .active)
        state.keys = state.keys.map { var k = $0; k.role = .previous; return k } + [stored]
        state.phase = .updating
        state.updateStarted = now
        state.changed = now
        try commit(state, name)
        try audit.append(AuditEvent(actor: actor, action: "ca.import", object: name.rawValue, outcome: .success, details: ["fingerprint": stored.fingerprint]))
    }

    private func commit(_ state: AuthorityState, _ name: AuthorityName) throws {
        precondition(state.checkConsistency() == nil, "rotation produced an inconsistent state")
        try Self.writeState(state, root: root, name: name)
        try reload()
    }
}
