import SSHCertificates

/// One full pass over a recording that checks everything the format promises: framing and CRCs,
/// sequence and time order, payloads, the hash chain against every checkpoint, trailer and
/// crash end, and their signatures. Shared by verification, recovery and the index. It stops at
/// the first structural problem (what follows cannot be trusted to mean anything) and remembers
/// the last good record boundary.
struct RecordingScan {
    var header: SessionHeader
    var headerKey: SSHPublicKey
    var totals = StreamTotals()
    /// Where the last mask of each stream ended, and how many masks there were.
    var maskEnds: [RecordStream: UInt64] = [:]
    var masks = 0
    var exit: ExitOutcome?
    var end: RecordingEnd?
    var lastTime: UInt64 = 0
    /// Records that passed every check (header included).
    var recordCount: UInt64 = 0
    /// Chain hash through the last good record.
    var chainHash: [UInt8]
    /// Offset just past the last good record.
    var goodEnd: UInt64
    /// Last record whose signature covers everything before it (checkpoint, trailer or crash end).
    var signedThrough: UInt64?
    var signerFingerprint: String?
    var problems: [VerificationProblem] = []
    /// Set when the file ends inside a record (or in zero-filled blocks): a torn tail recovery may cut.
    var tornTail: (offset: UInt64, damage: FrameDamage)?
    var fileSize: UInt64

    /// A header that cannot be read ends the scan before there is a recording to describe.
    struct HeaderFailure: Error { var problem: VerificationProblem }

    static func run(path: String, trustedKeys: [TrustedKey]? = nil) throws -> RecordingScan {
        let scanner = try FrameScanner(path: path, trackChain: true)
        func fail(_ kind: VerificationProblem.Kind, _ offset: UInt64, _ message: String) -> HeaderFailure {
            HeaderFailure(problem: VerificationProblem(kind: kind, record: 0, offset: offset, message: message))
        }
        let first: Frame
        switch try scanner.next() {
        case .end: throw fail(.truncated, scanner.offset, "the file ends before the header record")
        case .damage(_, let offset, let damage):
            let kind: VerificationProblem.Kind = RecordingReader.isTornTail(damage) ? .truncated : .headChecksum
            throw fail(kind, offset, "header: " + RecordingReader.describe(damage))
        case .frame(let frame): first = frame
        }
        guard first.payloadIntact else {
            throw fail(.payloadChecksum, first.offset, "header payload checksum mismatch (\(first.digestMismatch)): the header was altered")
        }
        guard first.head.typeByte == RecordType.header.rawValue, first.head.sequence == 0 else {
            throw fail(.malformedRecord, first.offset, "the first record is not the header")
        }
        let headerRecord: HeaderRecord
        let key: SSHPublicKey
        do { headerRecord = try HeaderRecord.decode(first.payload); key = try headerRecord.publicKey() } catch {
            throw fail(.malformedRecord, first.offset, "\(error)")
        }
        var scan = RecordingScan(header: headerRecord.session, headerKey: key, chainHash: first.chainHash,
                                 goodEnd: first.end, fileSize: scanner.fileSize)
        scan.recordCount = 1
        if let trustedKeys {
            // A verify-only (retired) key vouches only for recordings that started while it was
            // active: the start time is in the header the key itself signed over.
            switch TrustedKey.check(key, atMicros: headerRecord.session.startTimeMicros, in: trustedKeys, what: "the recording's start time") {
            case nil: break
            case .unknown:
                scan.problems.append(VerificationProblem(kind: .untrustedKey, record: 0, offset: first.offset,
                    message: "the recording key \(key.fingerprint) named in the header is not one of the \(trustedKeys.count) trusted recording keys (current or verify-only)"))
            case .outsideInterval(let reason):
                scan.problems.append(VerificationProblem(kind: .keyOutsideInterval, record: 0, offset: first.offset,
                    message: "the recording key \(key.fingerprint) named in the header did not sign recordings at that time: \(reason)"))
            }
        }
        scan.continueScan(scanner, trustedKeys: trustedKeys)
        return scan
    }

    private mutating func continueScan(_ scanner: FrameScanner, trustedKeys: [TrustedKey]?) {
        while true {
            let step: ScanStep
            do { step = try scanner.next() } catch {
                problem(.truncated, nil, scanner.offset, "\(error)"); return
            }
            switch step {
            case .end:
                if end == nil {
                    problem(.unfinished, recordCount, goodEnd,
                            "the recording ends after record \(recordCount - 1) without a trailer: unfinished (live, crashed or truncated at a record boundary)"
                            + (signedThrough.map { "; signed through record \($0)" } ?? "; nothing after the header is signed"))
                }
                return
            case .damage(_, let offset, let damage):
                if RecordingReader.isTornTail(damage) {
                    tornTail = (offset, damage)
                    problem(.truncated, recordCount, offset, RecordingReader.describe(damage))
                } else if case .headChecksum = damage {
                    problem(.headChecksum, recordCount, offset, RecordingReader.describe(damage))
                } else {
                    problem(.malformedRecord, recordCount, offset, RecordingReader.describe(damage))
                }
                return
            case .frame(let frame):
                guard accept(frame, scanner: scanner, trustedKeys: trustedKeys) else { return }
            }
        }
    }

    /// Checks one frame; false (with a problem recorded) when scanning must stop.
    private mutating func accept(_ frame: Frame, scanner: FrameScanner, trustedKeys: [TrustedKey]?) -> Bool {
        let index = recordCount
        let at = frame.offset
        if let end {
            problem(.dataAfterEnd, index, at, "\(fileSize - at) bytes follow the \(end == .crash ? "crash end" : "trailer") (record \(index - 1)): something was appended")
            return false
        }
        guard frame.payloadIntact else {
            problem(.payloadChecksum, index, at,
                    "payload checksum mismatch (\(frame.digestMismatch)): the record's bytes were altered")
            return false
        }
        guard frame.head.sequence == index else {
            classifySequenceBreak(found: frame, expected: index, scanner: scanner)
            return false
        }
        guard let type = RecordType(rawValue: frame.head.typeByte), type != .header else {
            problem(.malformedRecord, index, at, "record type 0x\(String(frame.head.typeByte, radix: 16)) is not allowed here")
            return false
        }
        guard frame.head.timeMicros >= lastTime else {
            problem(.timeOrder, index, at, "time \(frame.head.timeMicros) µs is before the previous record's \(lastTime) µs")
            return false
        }
        let time = frame.head.timeMicros
        do {
            switch type {
            case .stdin, .stdout, .stderr:
                totals[type.stream!] += UInt64(frame.payload.count)
            case .checkpoint:
                let checkpoint = try CheckpointPayload.decode(frame.payload)
                guard sealedFieldsMatch(index, at, "checkpoint", checkpoint.chainHash, checkpoint.totals) else { return false }
                guard signatureValid(index, at, "checkpoint", checkpoint.signatureBlob, checkpoint.message(sequence: index, time: time), key: headerKey) else { return false }
                signedThrough = index
            case .trailer:
                let trailer = try TrailerPayload.decode(frame.payload)
                guard sealedFieldsMatch(index, at, "trailer", trailer.chainHash, trailer.totals) else { return false }
                guard countMatches(index, at, "trailer", trailer.recordCount) else { return false }
                guard signatureValid(index, at, "trailer", trailer.signatureBlob, trailer.message(sequence: index, time: time), key: headerKey) else { return false }
                // A finished recording holds every byte its masks cover. (A crash end may not: the
                // bytes after a mask can be lost with the tail, and then they never reached the agent.)
                for (stream, end) in maskEnds where end > totals[stream] {
                    problem(.malformedRecord, index, at, "a mask of \(stream) reaches byte \(end), past the \(totals[stream]) bytes recorded")
                    return false
                }
                signedThrough = index
                end = trailer.reason.end
            case .crashEnd:
                let crash = try CrashEndPayload.decode(frame.payload)
                guard sealedFieldsMatch(index, at, "crash end", crash.chainHash, crash.totals) else { return false }
                guard countMatches(index, at, "crash end", crash.recordCount) else { return false }
                let signer: SSHPublicKey
                do { signer = try SSHPublicKey(blob: crash.signerKeyBlob) } catch {
                    problem(.malformedRecord, index, at, "crash end names a signer key that does not parse: \(error)"); return false
                }
                if let trustedKeys {
                    // Recovery signs with the key current when it ran: check that key at that time.
                    switch TrustedKey.check(signer, atMicros: crash.recoveredAtMicros, in: trustedKeys, what: "the recovery time") {
                    case nil: break
                    case .unknown:
                        problem(.untrustedKey, index, at, "the crash end is signed by \(signer.fingerprint), which is not a trusted recording key")
                    case .outsideInterval(let reason):
                        problem(.keyOutsideInterval, index, at, "the crash end is signed by \(signer.fingerprint), which did not sign at that time: \(reason)")
                    }
                }
                guard signatureValid(index, at, "crash end", crash.signatureBlob, crash.message(sequence: index, time: time), key: signer) else { return false }
                signedThrough = index
                signerFingerprint = signer.fingerprint
                end = .crash
            case .exitStatus, .exitSignal:
                exit = try ExitOutcome.decode(type: type, frame.payload)
            case .resize, .marker:
                _ = try ContentDecoder.decode(type: type, payload: frame.payload)
            case .mask:
                // A mask is written just before the bytes it covers (the masker's release order), so a
                // reader streaming the file knows a span is masked before it meets it. Spans ascend
                // and never overlap; the trailer checks that the bytes did follow.
                let mask = try RecordedMask.decode(frame.payload)
                guard mask.offset >= totals[mask.stream] else {
                    problem(.malformedRecord, index, at, "mask of \(mask.stream) bytes \(mask.offset)–\(mask.end) covers bytes already recorded (\(totals[mask.stream])): a mask precedes the bytes it covers")
                    return false
                }
                guard mask.offset >= maskEnds[mask.stream, default: 0] else {
                    problem(.malformedRecord, index, at, "mask of \(mask.stream) bytes \(mask.offset)–\(mask.end) overlaps or precedes the previous mask (ending at \(maskEnds[mask.stream, default: 0]))")
                    return false
                }
                maskEnds[mask.stream] = mask.end
                masks += 1
            case .header:
                return false
            }
        } catch {
            problem(.malformedRecord, index, at, "\(type) record: \(error)")
            return false
        }
        recordCount += 1
        lastTime = time
        chainHash = frame.chainHash
        goodEnd = frame.end
        return true
    }

    /// A sealing record must name the chain through the record before it and the totals so far.
    private mutating func sealedFieldsMatch(_ index: UInt64, _ at: UInt64, _ what: String, _ sealed: [UInt8], _ sealedTotals: StreamTotals) -> Bool {
        guard sealed == chainHash else {
            let since = signedThrough.map { "after the last verified signature at record \($0)" } ?? "after the header"
            problem(.chainMismatch, index, at,
                    "hash chain broken: the \(what) seals \(hexString(sealed).prefix(16))… but records 0…\(index - 1) hash to \(hexString(chainHash).prefix(16))…; a record \(since) was altered, or the \(what) was replaced")
            return false
        }
        guard sealedTotals == totals else {
            problem(.totalsMismatch, index, at, "the \(what) seals totals (\(sealedTotals)) but the records hold \(totals)")
            return false
        }
        return true
    }

    private mutating func countMatches(_ index: UInt64, _ at: UInt64, _ what: String, _ count: UInt64) -> Bool {
        guard count == index + 1 else {
            problem(.chainMismatch, index, at, "the \(what) says the recording has \(count) records, but it is record \(index)")
            return false
        }
        return true
    }

    private mutating func signatureValid(_ index: UInt64, _ at: UInt64, _ what: String, _ blob: [UInt8], _ message: [UInt8], key: SSHPublicKey) -> Bool {
        do { try key.verify(signatureBlob: blob, over: message) } catch {
            problem(.badSignature, index, at, "the \(what) signature does not verify with \(key.fingerprint): \(error) (the \(what) was forged or replaced)")
            return false
        }
        return true
    }

    /// The record at `expected`'s place carries another sequence number: find out whether records
    /// were dropped, swapped, reordered or duplicated by reading the sequence numbers that follow.
    private mutating func classifySequenceBreak(found: Frame, expected: UInt64, scanner: FrameScanner) {
        let seen = found.head.sequence
        let at = found.offset
        if seen < expected {
            problem(.recordDuplicated, expected, at, "sequence number \(seen) appears again (first seen at record \(seen)): a record was duplicated or moved back")
            return
        }
        var later: [(sequence: UInt64, offset: UInt64)] = []
        while later.count < 1_000_000, case .frame(let next)? = try? scanner.next() {
            later.append((next.head.sequence, next.offset))
            if next.head.sequence == expected { break }
        }
        if let match = later.last, match.sequence == expected {
            let matchPosition = expected + UInt64(later.count)
            if seen == matchPosition {
                problem(.recordsSwapped, expected, at,
                        "records \(expected) and \(seen) are swapped: record \(seen) (sequence number) is at byte \(at) and record \(expected) at byte \(match.offset)")
            } else {
                problem(.recordsReordered, expected, at,
                        "records are out of order: record \(seen) is where record \(expected) belongs; record \(expected) is at byte \(match.offset)")
            }
            return
        }
        let missing = seen - expected
        problem(.recordsMissing, expected, at,
                missing == 1 ? "record \(expected) is missing (dropped): the record here is record \(seen)"
                             : "records \(expected)…\(seen - 1) are missing (\(missing) dropped): the record here is record \(seen)")
    }

    private mutating func problem(_ kind: VerificationProblem.Kind, _ record: UInt64?, _ offset: UInt64?, _ message: String) {
        problems.append(VerificationProblem(kind: kind, record: record, offset: offset, message: message))
    }
}
