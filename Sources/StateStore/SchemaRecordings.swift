extension Schema {
    /// Migration 3: the recordings every replica shares (a session index over the bucket),
    /// the leases that keep two replicas from shipping one file, and replica heartbeats that
    /// tell a dead replica's spool from a live one's. Used by `RecordingShipping`.
    static let recordingsMigration = SchemaMigration(version: 3, name: "recordings index, shipping leases, replica heartbeats", statements: [
        // One row per replica that ever ran with this database. last_seen is the database's
        // own clock (now() at each heartbeat), so replicas' clocks never enter the comparison
        // that declares one dead.
        """
        CREATE TABLE replicas (
            replica_id  text        PRIMARY KEY CHECK (replica_id <> ''),
            last_seen   timestamptz NOT NULL,
            started_at  timestamptz NOT NULL DEFAULT now()
        )
        """,

        // The sessions index shared by replicas: one row per recording (a session channel,
        // "<session>-ch<n>", as in RECORDINGS/index.jsonl), from the moment its recording is
        // finished on a replica until long after it is in the bucket.
        //  - replica_id: the replica whose spool held the file (the writer, not the shipper).
        //  - state: local (finished, waiting in the spool), shipping (uploading under a
        //    lease), shipped (in the bucket, verified by HEAD, local copy deleted or being).
        //  - object_key: the full key in the bucket (prefix included); size and sha256 (hex
        //    of the whole file) of what was verified, set together with state = shipped.
        //  - summary: the recording's index line (RecordingSummary JSON, as index.jsonl holds
        //    it), so `sessions list` from the database shows what the local index shows.
        //    Text, not jsonb: it is read back whole, never queried into.
        //  - certificate_serial: numeric(20,0), an SSH serial is a uint64.
        """
        CREATE TABLE recordings (
            recording_id        text        PRIMARY KEY CHECK (recording_id <> ''),
            session_id          text        NOT NULL,
            channel             integer     NOT NULL CHECK (channel >= 0),
            replica_id          text        NOT NULL,
            subject             text        NOT NULL,
            target              text        NOT NULL,
            login               text        NOT NULL,
            certificate_key_id  text        NOT NULL,
            certificate_serial  numeric(20, 0) NOT NULL CHECK (certificate_serial >= 0 AND certificate_serial <= 18446744073709551615),
            started_at          timestamptz NOT NULL,
            ended_at            timestamptz,
            end_state           text        NOT NULL,
            state               text        NOT NULL CHECK (state IN ('local', 'shipping', 'shipped')),
            object_key          text,
            size                bigint      CHECK (size >= 0),
            sha256              text        CHECK (sha256 ~ '^[0-9a-f]{64}$'),
            summary             text        NOT NULL,
            shipped_at          timestamptz,
            CHECK (state <> 'shipped' OR (object_key IS NOT NULL AND size IS NOT NULL AND sha256 IS NOT NULL AND shipped_at IS NOT NULL))
        )
        """,
        "CREATE INDEX recordings_started_at ON recordings (started_at)",
        "CREATE INDEX recordings_session_id ON recordings (session_id)",

        // Who may ship (or recover) a recording now. Taken with one INSERT … ON CONFLICT … DO
        // UPDATE … WHERE the lease lapsed or is already ours: of two replicas taking one lease
        // at once, PostgreSQL makes the second wait for the first and then finds it held.
        // lease_until is the database's now() plus the lease, renewed while an upload runs.
        // No foreign key to recordings: a dead replica's unfinished file is leased before it
        // is recovered, and so before it has an index row.
        """
        CREATE TABLE recording_leases (
            recording_id  text        PRIMARY KEY CHECK (recording_id <> ''),
            owner         text        NOT NULL,
            lease_until   timestamptz NOT NULL
        )
        """,
    ])
}
