/// A session's masks by rule as its end record gives them: `rule=count` pairs by rule name,
/// comma-separated ("" when nothing was masked). Counts only: never what was masked.
enum MaskCounts {
    static func text(_ counts: [String: Int]) -> String {
        counts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }
}
