import SSHCertificates

/// Fixed-layout payloads of the non-data records. Encoding and decoding live side by side so the
/// layout in docs/recording-format.md has exactly one implementation.

public struct TerminalSize: Sendable, Equatable, Codable {
    public var columns: UInt16
    public var rows: UInt16

    public init(columns: UInt16, rows: UInt16) { self.columns = columns; self.rows = rows }

    func encoded() -> [UInt8] { var w = ByteWriter(); w.u16(columns); w.u16(rows); return w.bytes }

    static func decode(_ payload: [UInt8]) throws(PayloadError) -> TerminalSize {
        var r = ByteReader(payload)
        let value = TerminalSize(columns: try r.u16(), rows: try r.u16())
        try r.expectEnd()
        return value
    }
}

/// A span of an agent-bound stream the agent saw masked: `length` raw bytes from byte `offset` of
/// `stream` (counted from the stream's first byte), replaced because of `rule`. The raw bytes stay
/// in the data records; the masked view is rebuilt from them and these records.
public struct RecordedMask: Sendable, Equatable, Codable {
    public var stream: RecordStream
    public var offset: UInt64
    public var length: UInt32
    public var rule: String

    public init(stream: RecordStream, offset: UInt64, length: UInt32, rule: String) {
        self.stream = stream
        self.offset = offset
        self.length = length
        self.rule = rule
    }

    public var end: UInt64 { offset + UInt64(length) }

    /// Rule names as the masking rules spell them: 1–64 of a-z, 0-9 and -.
    static func isRuleName(_ bytes: [UInt8]) -> Bool {
        (1...64).contains(bytes.count) && bytes.allSatisfy { (0x61...0x7a).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2d }
    }

    func encoded() -> [UInt8] {
        var w = ByteWriter(); w.u8(stream.recordType.rawValue); w.u64(offset); w.u32(length); w.raw(Array(rule.utf8))
        return w.bytes
    }

    static func decode(_ payload: [UInt8]) throws(PayloadError) -> RecordedMask {
        var r = ByteReader(payload)
        let type = try r.u8()
        guard let stream = RecordType(rawValue: type)?.stream, stream != .stdin else { throw .invalid("mask stream 0x\(String(type, radix: 16)) is not stdout or stderr") }
        let offset = try r.u64()
        let length = try r.u32()
        guard length > 0 else { throw .invalid("mask length is 0") }
        let rule = r.rest()
        guard isRuleName(rule) else { throw .invalid("mask rule is not a rule name (1–64 of a-z, 0-9, -)") }
        return RecordedMask(stream: stream, offset: offset, length: length, rule: String(decoding: rule, as: UTF8.self))
    }
}

/// How the remote command ended.
public enum ExitOutcome: Sendable, Equatable, Codable, CustomStringConvertible {
    case status(UInt32)
    /// Signal name without "SIG" as SSH sends it ("TERM", "KILL").
    case signal(name: String, coreDumped: Bool)

    public var description: String {
        switch self {
        case .status(let code): "exit \(code)"
        case .signal(let name, let core): "signal \(name)" + (core ? " (core dumped)" : "")
        }
    }

    var recordType: RecordType {
        switch self {
        case .status: .exitStatus
        case .signal: .exitSignal
        }
    }

    func encoded() -> [UInt8] {
        var w = ByteWriter()
        switch self {
        case .status(let code): w.u32(code)
        case .signal(let name, let core): w.u8(core ? 1 : 0); w.raw(Array(name.utf8))
        }
        return w.bytes
    }

    static func decode(type: RecordType, _ payload: [UInt8]) throws(PayloadError) -> ExitOutcome {
        var r = ByteReader(payload)
        if type == .exitStatus {
            let code = try r.u32()
            try r.expectEnd()
            return .status(code)
        }
        let core = try r.u8()
        guard core <= 1 else { throw .invalid("core-dumped flag is \(core), not 0 or 1") }
        let name = r.rest()
        guard !name.isEmpty, let text = String(validating: name, as: UTF8.self) else { throw .invalid("signal name is empty or not UTF-8") }
        return .signal(name: text, coreDumped: core == 1)
    }
}

/// Signed statement "the chain through record `sequence - 1` hashes to `chainHash`", written every
/// few seconds so that tampering is evident before the session ends (and if it never ends cleanly).
struct CheckpointPayload: Equatable {
    var totals: StreamTotals
    var chainHash: [UInt8]
    var signatureBlob: [UInt8]

    func signedFields() -> [UInt8] {
        var w = ByteWriter(); w.u64(totals.stdin); w.u64(totals.stdout); w.u64(totals.stderr); w.raw(chainHash)
        return w.bytes
    }

    static func make(sequence: UInt64, time: UInt64, totals: StreamTotals, chainHash: [UInt8], signer: SSHPrivateKey) throws -> CheckpointPayload {
        var payload = CheckpointPayload(totals: totals, chainHash: chainHash, signatureBlob: [])
        payload.signatureBlob = try signer.sign(signedMessage(FrameLayout.checkpointDomain, sequence, time, payload.signedFields())).blob
        return payload
    }

    func encoded() -> [UInt8] { var w = ByteWriter(); w.raw(signedFields()); w.string(signatureBlob); return w.bytes }

    static func decode(_ payload: [UInt8]) throws(PayloadError) -> CheckpointPayload {
        var r = ByteReader(payload)
        let totals = StreamTotals(stdin: try r.u64(), stdout: try r.u64(), stderr: try r.u64())
        let value = CheckpointPayload(totals: totals, chainHash: try r.raw(32), signatureBlob: try r.string())
        try r.expectEnd()
        return value
    }

    func message(sequence: UInt64, time: UInt64) -> [UInt8] {
        signedMessage(FrameLayout.checkpointDomain, sequence, time, signedFields())
    }
}

/// The writer's last record: why it ended, how many records, the totals and the chain, signed.
struct TrailerPayload: Equatable {
    var reason: TrailerReason
    /// Records in the file, this trailer included.
    var recordCount: UInt64
    var totals: StreamTotals
    var chainHash: [UInt8]
    var signatureBlob: [UInt8]

    func signedFields() -> [UInt8] {
        var w = ByteWriter()
        w.u8(reason.rawValue); w.u64(recordCount)
        w.u64(totals.stdin); w.u64(totals.stdout); w.u64(totals.stderr); w.raw(chainHash)
        return w.bytes
    }

    static func make(sequence: UInt64, time: UInt64, reason: TrailerReason, totals: StreamTotals,
                     chainHash: [UInt8], signer: SSHPrivateKey) throws -> TrailerPayload {
        var payload = TrailerPayload(reason: reason, recordCount: sequence + 1, totals: totals, chainHash: chainHash, signatureBlob: [])
        payload.signatureBlob = try signer.sign(payload.message(sequence: sequence, time: time)).blob
        return payload
    }

    func encoded() -> [UInt8] { var w = ByteWriter(); w.raw(signedFields()); w.string(signatureBlob); return w.bytes }

    static func decode(_ payload: [UInt8]) throws(PayloadError) -> TrailerPayload {
        var r = ByteReader(payload)
        let reasonByte = try r.u8()
        guard let reason = TrailerReason(rawValue: reasonByte) else { throw .invalid("unknown trailer reason \(reasonByte)") }
        let count = try r.u64()
        let totals = StreamTotals(stdin: try r.u64(), stdout: try r.u64(), stderr: try r.u64())
        let value = TrailerPayload(reason: reason, recordCount: count, totals: totals, chainHash: try r.raw(32), signatureBlob: try r.string())
        try r.expectEnd()
        return value
    }

    func message(sequence: UInt64, time: UInt64) -> [UInt8] {
        signedMessage(FrameLayout.trailerDomain, sequence, time, signedFields())
    }
}

/// Appended by recovery: the writer died; everything up to here is sealed by the recovering key.
struct CrashEndPayload: Equatable {
    var recordCount: UInt64
    var totals: StreamTotals
    var chainHash: [UInt8]
    /// Bytes of torn tail that recovery cut off.
    var discardedBytes: UInt64
    /// Wall-clock time of the recovery, microseconds since the epoch.
    var recoveredAtMicros: UInt64
    /// The key that signed this record (the recording key may have rotated since the session).
    var signerKeyBlob: [UInt8]
    var signatureBlob: [UInt8]

    func signedFields() -> [UInt8] {
        var w = ByteWriter()
        w.u64(recordCount); w.u64(totals.stdin); w.u64(totals.stdout); w.u64(totals.stderr); w.raw(chainHash)
        w.u64(discardedBytes); w.u64(recoveredAtMicros); w.string(signerKeyBlob)
        return w.bytes
    }

    static func make(sequence: UInt64, time: UInt64, totals: StreamTotals, chainHash: [UInt8], discardedBytes: UInt64,
                     recoveredAtMicros: UInt64, signer: SSHPrivateKey) throws -> CrashEndPayload {
        var payload = CrashEndPayload(recordCount: sequence + 1, totals: totals, chainHash: chainHash, discardedBytes: discardedBytes,
                                      recoveredAtMicros: recoveredAtMicros, signerKeyBlob: signer.publicKey.blob, signatureBlob: [])
        payload.signatureBlob = try signer.sign(payload.message(sequence: sequence, time: time)).blob
        return payload
    }

    func encoded() -> [UInt8] { var w = ByteWriter(); w.raw(signedFields()); w.string(signatureBlob); return w.bytes }

    static func decode(_ payload: [UInt8]) throws(PayloadError) -> CrashEndPayload {
        var r = ByteReader(payload)
        let count = try r.u64()
        let totals = StreamTotals(stdin: try r.u64(), stdout: try r.u64(), stderr: try r.u64())
        let value = CrashEndPayload(recordCount: count, totals: totals, chainHash: try r.raw(32), discardedBytes: try r.u64(),
                                    recoveredAtMicros: try r.u64(), signerKeyBlob: try r.string(), signatureBlob: try r.string())
        try r.expectEnd()
        return value
    }

    func message(sequence: UInt64, time: UInt64) -> [UInt8] {
        signedMessage(FrameLayout.crashEndDomain, sequence, time, signedFields())
    }
}

/// What a signature covers: a domain string (so a checkpoint signature can never pass as a
/// trailer's), the record's sequence number and time, and the record's fields before the signature.
private func signedMessage(_ domain: [UInt8], _ sequence: UInt64, _ time: UInt64, _ fields: [UInt8]) -> [UInt8] {
    var w = ByteWriter(); w.raw(domain); w.u64(sequence); w.u64(time); w.raw(fields)
    return w.bytes
}
