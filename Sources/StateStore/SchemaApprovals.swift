extension Schema {
    /// Migration 4: approval requests shared by replicas (`PostgresApprovalStore`), so a
    /// decision made on one replica releases the command an agent resends to another.
    static let approvalsMigration = SchemaMigration(version: 4, name: "approval requests", statements: [
        // One row per request: what STATE/approvals/approvals.json holds for it, plus the
        // columns the store looks rows up by.
        //  - record: the request as `ApprovalRecord.json` writes it (the file's own coding,
        //    keys sorted, times in Unix milliseconds). Text, not jsonb: it is read back whole
        //    by the same decoder as the file, never queried into. It is the truth; the other
        //    columns are copies of its fields, written in the same statement.
        //  - position: insertion order, which is the file's order: `list` is oldest first, a
        //    resend matches the newest request with its key, and expiries are audited in it.
        //  - key_digest: `ApprovalRequestKey.digest` (hex), for the resend lookup.
        //  - status: the stored status; deadline: `expires_at`, so due expiries are one index
        //    range over the requests still in force.
        //  - finished_at: when a request reached its final state (NULL while in force), for
        //    pruning after the retention, as the file store drops finished requests.
        //  - change: from approval_changes, taken on every insert and update under the store's
        //    advisory lock, so commits happen in change order and max(change) is a token that
        //    moves with every committed change: the waiters' periodic re-read compares it.
        """
        CREATE TABLE approvals (
            approval_id  text        PRIMARY KEY CHECK (approval_id ~ '^apr-[a-z2-7]+$'),
            position     bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
            key_digest   text        NOT NULL CHECK (key_digest ~ '^[0-9a-f]{64}$'),
            status       text        NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'consumed')),
            deadline     timestamptz NOT NULL,
            finished_at  timestamptz,
            record       text        NOT NULL,
            change       bigint      NOT NULL,
            CHECK ((status IN ('pending', 'approved')) = (finished_at IS NULL))
        )
        """,
        "CREATE SEQUENCE approval_changes AS bigint MINVALUE 1 START WITH 1 NO CYCLE",
        "CREATE INDEX approvals_key_digest ON approvals (key_digest, position)",
        "CREATE INDEX approvals_in_force_deadline ON approvals (deadline) WHERE status IN ('pending', 'approved')",
        "CREATE INDEX approvals_finished_at ON approvals (finished_at) WHERE finished_at IS NOT NULL",
        "CREATE INDEX approvals_change ON approvals (change)",
    ])
}
