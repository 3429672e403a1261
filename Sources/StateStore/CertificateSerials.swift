import Foundation
import PostgresNIO

extension PostgresStore {
    /// The next certificate serial from the `certificate_serials` sequence: unique across every
    /// replica sharing the database by construction (one round trip, no lock held).
    public func nextSerial() async throws(StateStoreError) -> UInt64 {
        let operation = "certificate serial"
        let rows = try await query(operation, "SELECT nextval('certificate_serials')")
        do {
            guard let serial = try rows.first?.decode(Int64.self), serial >= 1 else {
                throw StateStoreError(operation: operation, endpoint: endpoint, kind: .data("nextval returned no serial"))
            }
            return UInt64(serial)
        } catch {
            throw StateStoreError.from(error, operation: operation, endpoint: endpoint)
        }
    }
}
