import JSONWriting

/// Gatehouse's one refusal shape, whatever refused: a certificate rule, a policy rule, a token
/// check, admission, a session limit. Three fields, the same everywhere — in every audit record
/// of a refusal, in the SSH denial line, in the HTTP error body, in the CLI:
///
/// - `code`: a stable machine code clients and alerts match on (never reworded);
/// - `rule`: the rule that decided (a validator rule, a policy rule, a token check);
/// - `reason`: one sentence for a person.
///
/// Each module keeps its own refusal type (an enum case per reason, as `CertificateRefusal`
/// has) and states it in this shape through `RefusalConvertible`; nothing builds refusal
/// dictionaries by hand.
public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: String
    public let rule: String
    public let reason: String

    public init(code: String, rule: String, reason: String) {
        self.code = code
        self.rule = rule
        self.reason = reason
    }

    public var description: String { reason }

    /// The fields an audit record of this refusal carries (`code`, `rule`, `reason`), with the
    /// record's own context; `extra` never overrides the refusal's fields.
    public func auditFields(_ extra: [String: String] = [:]) -> [String: String] {
        extra.merging(["code": code, "rule": rule, "reason": reason]) { _, refusal in refusal }
    }

    /// `{"code":…,"reason":…,"rule":…}` and `extra` string members, keys sorted, through the one
    /// JSON writer: the HTTP error body and the CLI's `--json` refusals.
    public func json(extra: [(String, String)] = []) -> String {
        var writer = JSONWriter()
        writer.beginObject()
        for (key, value) in ([("code", code), ("reason", reason), ("rule", rule)] + extra).sorted(by: { $0.0 < $1.0 }) {
            writer.key(key)
            writer.string(value)
        }
        writer.endObject()
        return writer.text
    }
}

/// A module's own refusal type, stated in the shared shape.
public protocol RefusalConvertible: Error, Sendable {
    var refusal: Refusal { get }
}
