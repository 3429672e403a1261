import Foundation
import JSONWriting

/// The store file's JSON: `{"approvals":[record…],"format":1}`, snake_case keys in sorted
/// order, times as Unix milliseconds, durations as milliseconds. Written with the one JSON
/// writer; read with JSONSerialization.
enum ApprovalRecordCoding {
    static let format = 1

    struct Malformed: Error, CustomStringConvertible {
        let description: String
    }

    static func encode(_ records: [ApprovalRecord]) -> [UInt8] {
        var w = JSONWriter(capacity: 1024 * max(1, records.count))
        w.beginObject()
        w.key("approvals")
        w.beginArray()
        for r in records { encode(r, into: &w) }
        w.endArray()
        w.member("format", format)
        w.endObject()
        return w.bytes + [0x0a]
    }

    static func encode(_ r: ApprovalRecord, into w: inout JSONWriter) {
        w.beginObject()
        w.member("approval_id", r.id)
        w.member("approval_ttl_ms", Int64(r.rule.approvalTTL * 1000))
        w.member("approvers", strings: r.rule.approvers)
        w.member("command", r.key.command)
        if let at = r.consumedAt { w.member("consumed_at_ms", ApprovalTime.milliseconds(at)) }
        if let session = r.consumedBy { w.member("consumed_by", session) }
        if let d = r.decision {
            w.key("decision")
            w.beginObject()
            w.key("approved"); w.bool(d.approved)
            w.member("approver", d.approver)
            w.member("approver_groups", strings: d.approverGroups)
            w.member("at_ms", ApprovalTime.milliseconds(d.at))
            w.member("reason", d.reason)
            w.endObject()
        }
        w.member("expires_at_ms", ApprovalTime.milliseconds(r.expiresAt))
        w.member("identity", r.key.identity)
        w.member("key_id", r.requester.keyID)
        w.member("login", r.key.login)
        w.member("pattern", r.rule.pattern)
        if let prompt = r.requester.promptSHA256 { w.member("prompt_sha256", prompt) }
        w.member("request_ttl_ms", Int64(r.rule.requestTTL * 1000))
        w.member("requested_at_ms", ApprovalTime.milliseconds(r.requestedAt))
        w.member("scope", r.rule.scope)
        w.member("serial", String(r.requester.serial))  // a string: JSONSerialization reads numbers past Int64 as doubles
        w.member("status", r.storedStatus.rawValue)
        w.member("target", r.key.target)
        if let task = r.requester.taskID { w.member("task_id", task) }
        w.endObject()
    }

    static func decode(_ bytes: [UInt8]) throws -> [ApprovalRecord] {
        guard let top = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
              let list = top["approvals"] as? [[String: Any]] else { throw Malformed(description: "not an approvals file") }
        guard (top["format"] as? NSNumber)?.intValue == format else { throw Malformed(description: "unknown approvals file format \(top["format"] ?? "none")") }
        return try list.map(decodeRecord)
    }

    static func decodeRecord(_ o: [String: Any]) throws -> ApprovalRecord {
        func text(_ key: String) throws -> String {
            guard let value = o[key] as? String else { throw Malformed(description: "approval record without \"\(key)\"") }
            return value
        }
        func ms(_ key: String, in object: [String: Any]? = nil) throws -> Int64 {
            guard let value = ((object ?? o)[key] as? NSNumber)?.int64Value else { throw Malformed(description: "approval record without \"\(key)\"") }
            return value
        }
        let id = try text("approval_id")
        guard let status = ApprovalStatus(rawValue: try text("status")) else { throw Malformed(description: "approval \(id): unknown status") }
        guard let serial = (o["serial"] as? String).flatMap(UInt64.init) else { throw Malformed(description: "approval \(id) without \"serial\"") }
        let requester = ApprovalRequester(keyID: try text("key_id"), serial: serial, taskID: o["task_id"] as? String, promptSHA256: o["prompt_sha256"] as? String)
        let rule = ApprovalRule(scope: try text("scope"), pattern: try text("pattern"), approvers: o["approvers"] as? [String] ?? [],
                                approvalTTL: Double(try ms("approval_ttl_ms")) / 1000, requestTTL: Double(try ms("request_ttl_ms")) / 1000)
        var decision: ApprovalDecision?
        if let d = o["decision"] as? [String: Any] {
            guard let approved = d["approved"] as? Bool, let approver = d["approver"] as? String, let reason = d["reason"] as? String else {
                throw Malformed(description: "approval \(id): incomplete decision")
            }
            decision = ApprovalDecision(approved: approved, approver: approver, approverGroups: d["approver_groups"] as? [String] ?? [],
                                        reason: reason, at: ApprovalTime.date(milliseconds: try ms("at_ms", in: d)))
        }
        return ApprovalRecord(
            id: id, key: ApprovalRequestKey(command: try text("command"), target: try text("target"), login: try text("login"), identity: try text("identity")),
            requester: requester, rule: rule, storedStatus: status, requestedAt: ApprovalTime.date(milliseconds: try ms("requested_at_ms")),
            decision: decision, consumedAt: (o["consumed_at_ms"] as? NSNumber).map { ApprovalTime.date(milliseconds: $0.int64Value) },
            consumedBy: o["consumed_by"] as? String, expiresAt: ApprovalTime.date(milliseconds: try ms("expires_at_ms")))
    }
}

extension ApprovalRecord {
    /// The record as the store file holds it (one JSON object, keys sorted): `approvals list
    /// --json`, and what an HTTP `GET /v1/approvals/{id}` for operators can answer.
    public var json: String {
        var w = JSONWriter()
        ApprovalRecordCoding.encode(self, into: &w)
        return w.text
    }

    /// A record from `json` (one object, as `json` writes it): how a database store in another
    /// module reads back the row it wrote, with the same decoder as the file.
    public init(json: String) throws {
        guard let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            throw ApprovalRecordCoding.Malformed(description: "an approval record is not a JSON object")
        }
        self = try ApprovalRecordCoding.decodeRecord(object)
    }
}
