/// Naming of recording files inside a recordings directory.
public enum RecordingFiles {
    public static let fileExtension = "ghrec"

    /// "<session>-ch<channel>": one recording per session channel.
    public static func recordingID(sessionID: String, channel: Int) -> String { "\(sessionID)-ch\(channel)" }

    public static func path(directory: String, recordingID: String) -> String {
        directory + "/" + recordingID + "." + fileExtension
    }

    /// Letters, digits, '-', '_', '.', not starting with '.', at most 128 bytes: the id becomes a
    /// file name, so nothing that could climb out of the directory or hide.
    public static func isValidSessionID(_ id: String) -> Bool {
        guard !id.isEmpty, id.utf8.count <= 128, !id.hasPrefix(".") else { return false }
        return id.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2D || byte == 0x5F || byte == 0x2E
        }
    }

    public static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    public static func baseName(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    /// The recording id of a file path ("…/abc-ch0.ghrec" → "abc-ch0"), nil for other files.
    public static func recordingID(ofPath path: String) -> String? {
        let name = baseName(of: path)
        let suffix = "." + fileExtension
        guard name.hasSuffix(suffix), name.count > suffix.count else { return nil }
        return String(name.dropLast(suffix.count))
    }
}
