import Foundation

/// The rules of the approval state machine, as pure functions over records, so every store
/// (the file store here, a database later) applies exactly the same ones. A store calls them
/// inside its own atomic section and persists what they return.
public enum ApprovalTransitions {
    /// The request in force for `key` at `now`: the newest one with that key that is pending or
    /// approved, or that finished (denied, consumed, expired) less than its `approval_ttl` ago.
    /// A finished request keeps answering resends with its own refusal for that long, so "a
    /// second run" or "a denied command" is refused rather than silently asked again; after it
    /// the same command may open a new request.
    public static func inForce(_ records: [ApprovalRecord], key: ApprovalRequestKey, now: Date) -> ApprovalRecord? {
        let digest = key.digest
        guard let newest = records.last(where: { $0.key.digest == digest }) else { return nil }
        guard let finished = newest.finishedAt(now: now) else { return newest }
        return now < finished.addingTimeInterval(newest.rule.approvalTTL) ? newest : nil
    }

    public static func newRequest(id: String, key: ApprovalRequestKey, requester: ApprovalRequester, rule: ApprovalRule, now: Date) -> ApprovalRecord {
        ApprovalRecord(id: id, key: key, requester: requester, rule: rule, storedStatus: .pending, requestedAt: now, decision: nil,
                       consumedAt: nil, consumedBy: nil, expiresAt: now.addingTimeInterval(rule.requestTTL))
    }

    /// A decision on `record`: four eyes first (even a listed approver cannot approve its own
    /// request), then the approver list, then the state, then the reason (a denial must say why).
    public static func decide(_ record: ApprovalRecord, approve: Bool, by approver: ApproverIdentity, reason: String, now: Date) throws(ApprovalRefusal) -> ApprovalRecord {
        if approver.isRequester(of: record) { throw .selfApproval(approver: approver.id) }
        if !approver.isListed(in: record.rule.approvers) { throw .approverNotListed(approver: approver.id, approvers: record.rule.approvers) }
        let status = record.status(at: now)
        if status == .expired { throw .expired(id: record.id, at: ApprovalTime.iso(record.expiresAt)) }
        guard status == .pending else { throw .alreadyDecided(id: record.id, status: status) }
        // The reason reaches the agent's stderr: one line of at most 1 KiB, no control characters
        // (a newline could forge a `gatehouse-approval:` line).
        let oneLine = String(String.UnicodeScalarView(reason.unicodeScalars.map { $0.value < 0x20 || (0x7f...0x9f).contains($0.value) ? " " : $0 }))
        let reason = String(oneLine.trimmingCharacters(in: .whitespaces).utf8.prefix(1024)) ?? String(oneLine.prefix(256))
        if !approve, reason.isEmpty { throw .reasonRequired }
        var decided = record
        decided.decision = ApprovalDecision(approved: approve, approver: approver.id, approverGroups: approver.groups, reason: reason, at: now)
        decided.storedStatus = approve ? .approved : .denied
        if approve { decided.expiresAt = now.addingTimeInterval(record.rule.approvalTTL) }
        return decided
    }

    /// Releases `record` for a resend presenting `key`: the key must match byte for byte (the
    /// refusal names the first part that differs), the request must be approved and within its
    /// `approval_ttl`, and not released before.
    public static func consume(_ record: ApprovalRecord, presenting key: ApprovalRequestKey, session: String?, now: Date) throws(ApprovalRefusal) -> ApprovalRecord {
        if let part = key.firstDifference(from: record.key) { throw .mismatch(id: record.id, part: part) }
        if let refusal = resendRefusal(record, now: now) { throw refusal }
        var consumed = record
        consumed.storedStatus = .consumed
        consumed.consumedAt = now
        consumed.consumedBy = session
        return consumed
    }

    /// The refusal a resend of `record` gets when it cannot be released now (nil when it can).
    public static func resendRefusal(_ record: ApprovalRecord, now: Date) -> ApprovalRefusal? {
        switch record.status(at: now) {
        case .approved: return nil
        case .pending: return .stillPending(id: record.id)
        case .denied: return .denied(id: record.id, by: record.decision?.approver ?? "?", reason: record.decision?.reason ?? "")
        case .expired: return .expired(id: record.id, at: ApprovalTime.iso(record.expiresAt))
        case .consumed: return .consumed(id: record.id, at: record.consumedAt.map(ApprovalTime.iso) ?? "?")
        }
    }

    /// `record` with its expiry written down, when its deadline passed while it was in force.
    public static func expired(_ record: ApprovalRecord, now: Date) -> ApprovalRecord? {
        guard !record.storedStatus.isFinal, record.status(at: now) == .expired else { return nil }
        var expired = record
        expired.storedStatus = .expired
        return expired
    }

    /// A fresh request id: `apr-` and 20 lowercase base32 characters (100 random bits), short
    /// enough to type into `gatehouse approvals approve`.
    public static func newID() -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567")
        var generator = SystemRandomNumberGenerator()
        return "apr-" + String((0..<20).map { _ in alphabet[Int(generator.next() % 32)] })
    }
}

/// Time as the store and the answers write it.
public enum ApprovalTime {
    /// Stores keep times to the millisecond, as the file writes them.
    public static func milliseconds(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
    public static func date(milliseconds: Int64) -> Date { Date(timeIntervalSince1970: Double(milliseconds) / 1000) }

    /// ISO 8601 in UTC with milliseconds, e.g. `2026-12-02T09:15:00.000Z`.
    public static func iso(_ date: Date) -> String {
        let ms = milliseconds(date)
        var t = time_t(ms / 1000)
        var parts = tm()
        gmtime_r(&t, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                      parts.tm_hour, parts.tm_min, parts.tm_sec, Int(ms % 1000))
    }
}
