import Crypto
import Foundation

/// One numbered step of the schema. Applied migrations are never edited: a change is a new
/// migration. The checksum of the statements is recorded with the version, so a database
/// migrated by a build with different SQL under the same number is refused, not trusted.
public struct SchemaMigration: Sendable {
    public let version: Int
    public let name: String
    /// Run one by one (postgres-nio's extended protocol takes one statement at a time), in
    /// the migration's transaction.
    public let statements: [String]

    public init(version: Int, name: String, statements: [String]) {
        self.version = version
        self.name = name
        self.statements = statements
    }

    /// SHA-256 (hex) of the statements, each followed by a NUL.
    public var checksum: String {
        var hasher = SHA256()
        for statement in statements { hasher.update(data: Array(statement.utf8) + [0]) }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}

/// The schema this build runs on.
public enum Schema {
    /// `pg_advisory_xact_lock` key serialising `migrate()` across processes ("GATEMIGR").
    public static let migrationLockKey: Int64 = 0x4741_5445_4D49_4752

    public static var latestVersion: Int { migrations.last?.version ?? 0 }

    public static let migrations: [SchemaMigration] = [initialMigration, sharedStateMigration, recordingsMigration, approvalsMigration, rateLimitsMigration]

    static let initialMigration = SchemaMigration(version: 1, name: "shared state: audit chain, serials, revocations, session budgets, jti cache", statements: [
            // Text columns hold agents' and admins' strings verbatim only in UTF-8: refuse any
            // other server encoding here rather than fail on the first non-ASCII key id later.
            """
            DO $$ BEGIN
              IF current_setting('server_encoding') <> 'UTF8' THEN
                RAISE EXCEPTION 'the Gatehouse database must use UTF8 encoding, not %', current_setting('server_encoding');
              END IF;
            END $$
            """,

            // The audit log (STATE/audit.log): one row per line of the file, one chain for
            // every replica. Columns are the record's fields exactly as `AuditLog` hashes
            // them, so a row rebuilds the canonical line byte for byte:
            //  - seq: the chain position, 1, 2, 3… with no gap; the primary key is also the
            //    last guard against two appenders taking one number.
            //  - time: the ISO 8601 text that was hashed (UTC, milliseconds). Text, not
            //    timestamptz: the hash covers this string, and a round trip through another
            //    type must not be trusted to reproduce it.
            //  - details: the details object as JSON text (keys in UTF-8 order). Text, not
            //    jsonb: jsonb cannot hold \u0000, which the file's JSON can; the hash is over
            //    the canonical line, whatever order the keys are stored in. `details::jsonb`
            //    works in queries on every row without a NUL.
            //  - prev_hash: the previous row's hash (64 zeros for seq 1), the file's `prev`.
            //  - hash: SHA-256 of this row's canonical line, so an append reads the head's hash
            //    without rehashing it, and verify can name an edited row itself.
            """
            CREATE TABLE audit_events (
                seq        bigint PRIMARY KEY CHECK (seq >= 1),
                time       text   NOT NULL,
                actor      text   NOT NULL,
                action     text   NOT NULL,
                object     text   NOT NULL,
                outcome    text   NOT NULL CHECK (outcome IN ('success', 'refused', 'failure')),
                details    text   NOT NULL,
                prev_hash  text   NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
                hash       text   NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$')
            )
            """,
            // Append-only in the database as well: an UPDATE, DELETE or TRUNCATE by the role
            // Gatehouse connects as is refused. (The table's owner or a superuser can disable
            // the trigger; the hash chain is what shows that they did.)
            """
            CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
            END $$
            """,
            "CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()",

            // Certificate serials. A single machine draws random 64-bit serials today
            // (CertificateAuthority/Issuing.swift); replicas take them from one sequence, unique
            // by construction. nextval is not transactional: a failed issuance leaves a gap,
            // which is harmless (serials must be unique, not dense). bigint's range (2^63 - 1)
            // fits in the certificate's uint64.
            "CREATE SEQUENCE certificate_serials AS bigint MINVALUE 1 START WITH 1 NO CYCLE",

            // Revocations (STATE/revocations.json: serials per CA, key ids per CA or any CA,
            // whole keys). One row per revocation, in order; max(id) is the KRL version (the
            // file's `version` counter). What the file lacks and replicas need is who revoked,
            // when and why, so the table has them.
            //  - serial: numeric(20,0), because an SSH serial is a uint64 and bigint stops at
            //    2^63 - 1 (certificates signed before replicas carry random 64-bit serials).
            //  - public_key: the OpenSSH public key line: the KRL's key section needs the key
            //    itself; key_fingerprint (SHA256:…) is for people and lookups.
            //  - ca: the authority a serial or key id is revoked under (NULL: any CA, key ids only).
            """
            CREATE TABLE revocations (
                id              bigserial   PRIMARY KEY,
                kind            text        NOT NULL CHECK (kind IN ('serial', 'key_id', 'key')),
                ca              text        CHECK (ca IN ('user', 'target', 'host')),
                serial          numeric(20, 0) CHECK (serial >= 0 AND serial <= 18446744073709551615),
                key_id          text,
                public_key      text,
                key_fingerprint text,
                reason          text        NOT NULL DEFAULT '',
                actor           text        NOT NULL,
                revoked_at      timestamptz NOT NULL DEFAULT now(),
                CHECK (
                    (kind = 'serial' AND ca IS NOT NULL AND serial IS NOT NULL AND key_id IS NULL AND public_key IS NULL AND key_fingerprint IS NULL)
                 OR (kind = 'key_id' AND key_id IS NOT NULL AND serial IS NULL AND public_key IS NULL AND key_fingerprint IS NULL)
                 OR (kind = 'key' AND public_key IS NOT NULL AND key_fingerprint IS NOT NULL AND ca IS NULL AND serial IS NULL AND key_id IS NULL)
                )
            )
            """,

            // Per-certificate session budgets (STATE/session-budgets/<key>: "used valid_before").
            //  - key: the SHA-256 hex the bastion derives from the certificate without its
            //    signature (the file's name).
            //  - max_sessions: the certificate's max-sessions@gatehouse, stored so the atomic
            //    take compares against the row itself (the file had it only from the caller).
            //  - expires_at: the certificate's valid_before; after it the row only waits for
            //    pruning.
            """
            CREATE TABLE session_budgets (
                key          text        PRIMARY KEY CHECK (key ~ '^[0-9a-f]{64}$'),
                max_sessions integer     NOT NULL CHECK (max_sessions >= 1),
                used         integer     NOT NULL CHECK (used >= 0 AND used <= max_sessions),
                expires_at   timestamptz NOT NULL
            )
            """,
            "CREATE INDEX session_budgets_expires_at ON session_budgets (expires_at)",

            // The `jti` replay cache (today in memory per process: Issuance/Tokens/ReplayCache).
            // The primary key is the replay check: a second insert of (issuer, jti) conflicts.
            // expires_at is the token's exp plus the allowed clock skew, as the memory cache
            // keeps it: until then a second use is a replay; after it the row may be pruned.
            """
            CREATE TABLE token_jti (
                issuer     text        NOT NULL,
                jti        text        NOT NULL,
                expires_at timestamptz NOT NULL,
                PRIMARY KEY (issuer, jti)
            )
            """,
            "CREATE INDEX token_jti_expires_at ON token_jti (expires_at)",
        ])
}
