import Foundation

/// The two forms of the signing time SigV4 uses: `20130524T000000Z` (x-amz-date and the
/// string to sign) and `20130524` (the credential scope). Formatted from the UTC calendar
/// fields by hand: a DateFormatter is costly to build and has locale pitfalls for a format
/// that never changes.
struct SigV4Timestamp: Equatable {
    let dateTime: String
    let date: String

    init(_ instant: Date) {
        var seconds = time_t(instant.timeIntervalSince1970.rounded(.down))
        var fields = tm()
        gmtime_r(&seconds, &fields)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let year = String(fields.tm_year + 1900)
        date = year + two(fields.tm_mon + 1) + two(fields.tm_mday)
        dateTime = date + "T" + two(fields.tm_hour) + two(fields.tm_min) + two(fields.tm_sec) + "Z"
    }
}
