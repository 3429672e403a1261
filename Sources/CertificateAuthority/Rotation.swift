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
            let stored = try Self.writeKey(key, root: root, name: name, role: .next, activeFromMicros: nil)   // key file before state
            state.keys.append(stored)
            state.phase = .initialized
        case .initialized:
            state.keys = state.keys.map { key in
                var k = key
                if k.role == .active { k.role = .previous } else { k.role = .active; k.activeFromMicros = now.micros }
                return k
            }
            state.phase = .updating
            state.updateStarted = now
        case .updating:
            let allowedAt = state.updateStarted!.addingTimeInterval(state.gracePeriod)
            if now < allowedAt && !force {
                throw CAStoreError("retiring the previous \(name.rawValue) CA key is allowed from \(ISO8601DateFormatter().string(from: allowedAt)) (grace period \(Int(state.gracePeriod)) s, the longest certificate lifetime); use --force to retire now and invalidate certificates it signed")
            }
            let previous = state.key(.previous)!
            retiredKeyID = previous.id
            // The public half stays, verify-only, with the interval it was active.
            state.retire(previous, at: now.micros, how: "retired")
            state.phase = .standby
            state.updateStarted = nil
        }
        state.changed = now
        try commit(state, name)
        if retiredKeyID != nil { try closeInterval(&state, name, now: now) }
        if let retiredKeyID { unlink(Self.keyPath(root, name, retiredKeyID)) }          // file after state
        var details = ["phase": state.phase.rawValue, "signing": state.signing!.fingerprint, "forced": force && retiredKeyID != nil ? "true" : "false"]
        if let next = state.key(.next) { details["next"] = next.fingerprint }
        if let previous = state.key(.previous) { details["previous"] = previous.fingerprint }
        if retiredKeyID != nil, let retired = state.history.last { details["retired"] = retired.fingerprint }
        try audit.append(AuditEvent(actor: actor, action: "ca.rotate", object: name.rawValue, outcome: .success, details: details))
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
        case .updating:
            dropped = state.key(.active)!
            state.updateStarted = nil
        }
        // The dropped key may have signed while it was active (update phase): it stays
        // verify-only for that interval, like a retired key.
        state.retire(dropped, at: now.micros, how: "rolled-back")
        state.keys = state.keys.map { var k = $0; k.role = .active; return k }
        state.phase = .standby
        state.changed = now
        try commit(state, name)
        try closeInterval(&state, name, now: now)
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
        let stored = try Self.writeKey(key, root: root, name: name, role: .active, activeFromMicros: now.micros)
        let replaced = state.keys.map(\.fingerprint)
        state.keys = state.keys.map { var k = $0; k.role = .previous; return k } + [stored]
        state.phase = .updating
        state.updateStarted = now
        state.changed = now
        try commit(state, name)
        try audit.append(AuditEvent(actor: actor, action: "ca.import", object: name.rawValue, outcome: .success, details: ["fingerprint": stored.fingerprint, "previous": replaced.joined(separator: ",")]))
    }

    /// A server may sign with the key until it sees the state that dropped it, which is only
    /// once that state is on disk, after `now` was taken. So the interval of the key just
    /// dropped ends when that state is durable, not when the command began: written again with
    /// that time, a recording a server started in between still falls inside it. (A crash
    /// between the two writes leaves the earlier, stricter end.)
    private func closeInterval(_ state: inout AuthorityState, _ name: AuthorityName, now: Date) throws {
        guard var history = state.retiredKeys, !history.isEmpty else { return }
        history[history.count - 1].retiredMicros = max(now.micros, Date().micros)
        state.retiredKeys = history
        try commit(state, name)
    }

    private func commit(_ state: AuthorityState, _ name: AuthorityName) throws {
        precondition(state.checkConsistency() == nil, "rotation produced an inconsistent state")
        try Self.writeState(state, root: root, name: name)
        try reload()
    }
}
