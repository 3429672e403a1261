import Foundation

extension KeyRevocationList {
    /// Parses a binary KRL as `ssh-keygen -k` writes it. Unknown sections, unknown critical
    /// extensions and signatures are refused rather than skipped: a KRL that cannot be fully
    /// understood must not be trusted to say "not revoked".
    public init(binary: [UInt8]) throws(KRLError) {
        var r = SSHWireReader(binary)
        do {
            guard try r.readUInt64("magic") == Self.magic else { throw KRLError.badMagic }
            let format = try r.readUInt32("format version")
            guard format == Self.formatVersion else { throw KRLError.unsupportedFormat(format) }
            self.init(version: try r.readUInt64("KRL version"), generatedDate: try r.readUInt64("generated date"))
            _ = try r.readUInt64("flags")
            _ = try r.readString("reserved")
            comment = String(decoding: try r.readString("comment"), as: UTF8.self)
            while !r.isAtEnd {
                let type = try r.readByte("section type")
                let data = try r.readString("section data")
                guard let section = Section(rawValue: type) else { throw KRLError.unknownSection(type) }
                var s = SSHWireReader(data)
                switch section {
                case .certificates: try readCertificateSection(&s)
                case .explicitKey:
                    while !s.isAtEnd {
                        let blob = try s.readString("revoked key")
                        do { explicitKeys.insert(try SSHPublicKey(blob: blob).blob) } catch { throw KRLError.key(error) }
                    }
                case .sha1, .sha256:
                    let width = section == .sha1 ? 20 : 32
                    while !s.isAtEnd {
                        let fp = try s.readString("fingerprint")
                        guard fp.count == width else { throw KRLError.badFingerprintLength(fp.count) }
                        if section == .sha1 { sha1Fingerprints.insert(fp) } else { sha256Fingerprints.insert(fp) }
                    }
                case .signature: throw KRLError.signedKRL
                case .extensionSection: try Self.readExtension(&s)
                }
            }
        } catch let e as KRLError {
            throw e
        } catch let e as SSHWireError {
            throw .wire(e)
        } catch {
            throw .wire(.truncated(field: "KRL"))
        }
    }

    private static func readExtension(_ s: inout SSHWireReader) throws {
        let name = try s.readText("extension name")
        let critical = try s.readBool("extension criticality")
        _ = try s.readString("extension data")
        try s.expectEnd("extension")
        if critical { throw KRLError.unsupportedCriticalExtension(name) }
    }

    private mutating func readCertificateSection(_ s: inout SSHWireReader) throws {
        let caBlob = try s.readString("CA key")
        var ca: SSHPublicKey?
        if !caBlob.isEmpty {
            do { ca = try SSHPublicKey(blob: caBlob) } catch { throw KRLError.key(error) }
        }
        _ = try s.readString("reserved")
        var section = CertificateSection(caKey: ca)
        while !s.isAtEnd {
            let type = try s.readByte("certificate subsection type")
            var d = SSHWireReader(try s.readString("certificate subsection"))
            guard let sub = CertificateSubsection(rawValue: type) else { throw KRLError.unknownCertificateSection(type) }
            switch sub {
            case .serialList:
                while !d.isAtEnd { let v = try d.readUInt64("serial"); section.serials.insert(v...v) }
            case .serialRange:
                let lo = try d.readUInt64("serial range start"), hi = try d.readUInt64("serial range end")
                guard lo <= hi else { throw KRLError.badSerialRange(lo, hi) }
                try d.expectEnd("serial range")
                section.serials.insert(lo...hi)
            case .serialBitmap:
                let offset = try d.readUInt64("bitmap offset")
                let bitmap = try d.readPositiveMPInt("serial bitmap")
                try d.expectEnd("serial bitmap")
                // Bit i (counting from the least significant bit) revokes serial offset + i.
                for (byteIndex, byte) in bitmap.reversed().enumerated() where byte != 0 {
                    for bit in 0..<8 where byte & (1 << bit) != 0 {
                        let (serial, overflow) = offset.addingReportingOverflow(UInt64(byteIndex * 8 + bit))
                        guard !overflow else { throw KRLError.badSerialRange(offset, .max) }
                        section.serials.insert(serial...serial)
                    }
                }
            case .keyID:
                while !d.isAtEnd { section.keyIDs.insert(try d.readText("key id")) }
            case .extensionSection:
                try Self.readExtension(&d)
            }
        }
        if let i = certificateSections.firstIndex(where: { $0.caKey == ca }) {
            for range in section.serials.ranges { certificateSections[i].serials.insert(range) }
            certificateSections[i].keyIDs.formUnion(section.keyIDs)
        } else {
            certificateSections.append(section)
        }
    }

    /// Serializes the KRL in the binary form sshd's `RevokedKeys` and `ssh-keygen -Q` read.
    /// Entries are written sorted so the output is deterministic.
    public func serialized() -> [UInt8] {
        var w = SSHWireWriter()
        w.writeUInt64(Self.magic)
        w.writeUInt32(Self.formatVersion)
        w.writeUInt64(version)
        w.writeUInt64(generatedDate)
        w.writeUInt64(0)
        w.writeString([UInt8]())
        w.writeString(comment)

        for section in sortedCertificateSections where !section.serials.isEmpty || !section.keyIDs.isEmpty {
            var s = SSHWireWriter()
            s.writeString(section.caKey?.blob ?? [])
            s.writeString([UInt8]())
            var singles: [UInt64] = []
            for range in section.serials.ranges {
                if range.lowerBound == range.upperBound {
                    singles.append(range.lowerBound)
                } else {
                    var d = SSHWireWriter()
                    d.writeUInt64(range.lowerBound)
                    d.writeUInt64(range.upperBound)
                    s.writeByte(CertificateSubsection.serialRange.rawValue)
                    s.writeString(d.bytes)
                }
            }
            if !singles.isEmpty {
                var d = SSHWireWriter()
                for v in singles { d.writeUInt64(v) }
                s.writeByte(CertificateSubsection.serialList.rawValue)
                s.writeString(d.bytes)
            }
            if !section.keyIDs.isEmpty {
                var d = SSHWireWriter()
                for id in section.keyIDs.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) { d.writeString(id) }
                s.writeByte(CertificateSubsection.keyID.rawValue)
                s.writeString(d.bytes)
            }
            w.writeByte(Section.certificates.rawValue)
            w.writeString(s.bytes)
        }
        for (section, entries) in [(Section.explicitKey, explicitKeys), (.sha1, sha1Fingerprints), (.sha256, sha256Fingerprints)] where !entries.isEmpty {
            var s = SSHWireWriter()
            for e in entries.sorted(by: { $0.lexicographicallyPrecedes($1) }) { s.writeString(e) }
            w.writeByte(section.rawValue)
            w.writeString(s.bytes)
        }
        return w.bytes
    }
}
