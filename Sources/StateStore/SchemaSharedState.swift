extension Schema {
    /// What a running replica keeps in the database beyond migration 1: the CA store and the
    /// revocation list as sealed files, and the drained audit spools.
    static let sharedStateMigration = SchemaMigration(version: 2, name: "shared CA files and revocations (sealed), audit spools", statements: [
        // The CA store and the revocation list, as the files every replica materialises in its
        // state directory (STATE/ca/…, STATE/revocations.json), so one code path (CAStore)
        // reads and changes them on every kind of store.
        //  - path: relative to the state directory; only the files the CA store owns.
        //  - generation: from shared_file_generations, taken when the row is written; a replica
        //    applies the rows newer than what it has, in generation order, and refuses a row
        //    older than one it already applied for the same path (a rollback of the table).
        //  - sealed: AES-256-GCM under the key-encryption key every replica reads from a file
        //    or the environment: nonce (12) | ciphertext | tag (16), with the path and the
        //    generation as associated data. Private keys are never in the database in clear,
        //    and nobody who can write the table without the key can change what a replica
        //    trusts, move a sealed file to another path or replay an old generation under a
        //    new one.
        //  - deleted: the file was removed (a retired key); `sealed` then seals nothing.
        """
        CREATE TABLE shared_files (
            path       text        PRIMARY KEY CHECK (path ~ '^(revocations\\.json|ca/(user|target|host|recording)/(state\\.json|keys/[A-Za-z0-9._-]+\\.key))$'),
            generation bigint      NOT NULL UNIQUE CHECK (generation >= 1),
            sealed     bytea       NOT NULL,
            deleted    boolean     NOT NULL DEFAULT false,
            changed_by text        NOT NULL,
            changed_at timestamptz NOT NULL DEFAULT now()
        )
        """,
        "CREATE SEQUENCE shared_file_generations AS bigint MINVALUE 1 START WITH 1 NO CYCLE",
        // Revocations travel as the sealed revocations.json above (the KRL's source), so the
        // unsealed table of migration 1 would be a second, forgeable truth: it goes.
        "DROP TABLE revocations",

        // Audit spools drained into the chain: a replica that lost the database keeps its
        // events in a local spool; its drain records the last entry appended here in the same
        // transaction, so a crash between the commit and deleting the file never appends an
        // entry twice.
        """
        CREATE TABLE audit_spools (
            spool      text        PRIMARY KEY CHECK (spool ~ '^[0-9a-f-]{36}$'),
            last_entry bigint      NOT NULL CHECK (last_entry >= 1),
            drained_at timestamptz NOT NULL DEFAULT now()
        )
        """,
    ])
}
