extension String {
    /// Substring search on the UTF-8 bytes. Foundation's `contains` goes through CFString and
    /// UTF-16, too slow for the checks that run at separators in ordinary output.
    func hasBytes(_ needle: String) -> Bool {
        var haystack = self, needle = needle
        return haystack.withUTF8 { h in
            needle.withUTF8 { n in
                guard !n.isEmpty, n.count <= h.count else { return n.isEmpty }
                for start in 0...(h.count - n.count) where h[start] == n[0] {
                    var k = 1
                    while k < n.count, h[start + k] == n[k] { k += 1 }
                    if k == n.count { return true }
                }
                return false
            }
        }
    }
}
