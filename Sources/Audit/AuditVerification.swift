import Foundation

/// What `AuditLog.verify` found: the number of intact lines, or the first broken line and why.
public enum AuditVerification: Sendable, Equatable, CustomStringConvertible {
    case intact(lines: Int, lastHash: String)
    case broken(line: Int, reason: String)

    public var description: String {
        switch self {
        case .intact(let n, let h): return "audit log intact: \(n) line(s), last line hash \(h)"
        case .broken(let line, let reason): return "audit log broken at line \(line): \(reason)"
        }
    }
}

extension AuditLog {
    /// Replays the chain from the first line. Any edit changes a line's hash and so the next
    /// line's `prev`; a dropped, inserted or swapped line breaks `seq` or `prev`; a torn line
    /// is not valid JSON. The report names the first line where the chain breaks.
    public static func verify(path: String) throws -> AuditVerification {
        guard let data = FileManager.default.contents(atPath: path) else { throw AuditLogError(description: "cannot read audit log \(path)") }
        let bytes = Array(data)
        if bytes.isEmpty { return .intact(lines: 0, lastHash: genesisHash) }
        var lines = bytes.split(separator: 0x0a, omittingEmptySubsequences: false).map(Array.init)
        if lines.last == [] { lines.removeLast() } else { return .broken(line: lines.count, reason: "the last line is incomplete (torn write)") }
        var prev = genesisHash
        for (index, line) in lines.enumerated() {
            let number = index + 1
            let record: AuditRecord
            do { record = try decode(line) } catch { return .broken(line: number, reason: "not a valid audit record") }
            if record.previousHash != prev { return .broken(line: number, reason: "prev hash does not match line \(number - 1) (a line before it was edited, dropped, inserted or reordered)") }
            if record.seq != UInt64(number) { return .broken(line: number, reason: "sequence number \(record.seq) where \(number) was expected") }
            if encode(record) != String(decoding: line, as: UTF8.self) { return .broken(line: number, reason: "line is not in canonical form (edited)") }
            prev = hash(line)
        }
        return .intact(lines: lines.count, lastHash: prev)
    }

    /// Every readable record, in order (for `gatehouse audit` and `sessions show`).
    public static func records(path: String) throws -> [AuditRecord] {
        guard let data = FileManager.default.contents(atPath: path) else { throw AuditLogError(description: "cannot read audit log \(path)") }
        return Array(data).split(separator: 0x0a).compactMap { try? decode(Array($0)) }
    }
}
