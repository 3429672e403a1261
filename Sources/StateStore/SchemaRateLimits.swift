extension Schema {
    /// Issuance rate limits shared by replicas: one token bucket per subject, whichever replica
    /// the balancer sends its requests to.
    static let rateLimitsMigration = SchemaMigration(version: 5, name: "issuance rate limits", statements: [
        //  - subject: SHA-256 hex of "issuer NUL sub" (the key the in-memory limiter uses;
        //    hashed because text cannot hold the NUL that keeps issuer and subject apart).
        //  - tokens: what the bucket held at updated_at; the database's clock refills it, so
        //    replicas with drifting clocks count one budget.
        """
        CREATE TABLE issuance_rate_limits (
            subject    text             PRIMARY KEY CHECK (subject ~ '^[0-9a-f]{64}$'),
            tokens     double precision NOT NULL,
            updated_at timestamptz      NOT NULL
        )
        """,
        "CREATE INDEX issuance_rate_limits_updated_at ON issuance_rate_limits (updated_at)",
    ])
}
