import Foundation
import Logging
import PostgresNIO

/// What `schema_migrations` says: the applied versions and their checksums.
public struct AppliedMigration: Sendable, Equatable {
    public let version: Int
    public let checksum: String
}

extension PostgresStore {
    static let createMigrationsTable: PostgresQuery = """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version    integer     PRIMARY KEY CHECK (version >= 1),
            name       text        NOT NULL,
            checksum   text        NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """

    /// Applies the migrations the database lacks, in order, each in its own transaction under
    /// `pg_advisory_xact_lock(Schema.migrationLockKey)`: two replicas (or two `gatehouse store
    /// migrate`) started together apply each migration once; the second finds it applied
    /// under the lock and skips it. Refuses a database migrated past this build or from
    /// different SQL. Returns the versions applied now (empty when the schema was current).
    @discardableResult
    public func migrate(_ migrations: [SchemaMigration] = Schema.migrations) async throws(StateStoreError) -> [Int] {
        Self.requireOrdered(migrations)
        let latest = migrations.last?.version ?? 0
        var appliedNow: [Int] = []
        for migration in migrations {
            let applied = try await transaction("schema migration \(migration.version) (\(migration.name))") { [endpoint] connection, logger in
                try await connection.query("SELECT pg_advisory_xact_lock(\(Schema.migrationLockKey))", logger: logger)
                try await connection.query(Self.createMigrationsTable, logger: logger)
                let present = try await Self.appliedMigrations(connection, logger)
                let operation = "schema migration \(migration.version)"
                if let newest = present.last, newest.version > latest {
                    throw StateStoreError(operation: operation, endpoint: endpoint, kind: .schema(.newer(database: newest.version, expected: latest)))
                }
                if let row = present.first(where: { $0.version == migration.version }) {
                    guard row.checksum == migration.checksum else {
                        throw StateStoreError(operation: operation, endpoint: endpoint, kind: .schema(.modified(version: migration.version)))
                    }
                    return false
                }
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (\(migration.version), \(migration.name), \(migration.checksum))",
                    logger: logger)
                return true
            }
            if applied { appliedNow.append(migration.version) }
        }
        return appliedNow
    }

    /// Refuses to run on a database whose schema is not exactly this build's: never
    /// migrated, missing migrations (run `gatehouse store migrate`), migrated past this build
    /// (a newer Gatehouse did it), or applied from different SQL. Returns the version.
    @discardableResult
    public func checkVersion(_ migrations: [SchemaMigration] = Schema.migrations) async throws(StateStoreError) -> Int {
        Self.requireOrdered(migrations)
        let latest = migrations.last?.version ?? 0
        let operation = "schema check"
        let found: [AppliedMigration]? = try await run(operation) { [client, logger] in
            try await client.withConnection { connection in
                let exists = try await connection.rows("SELECT to_regclass('schema_migrations') IS NOT NULL", logger).first?.decode(Bool.self)
                return exists == true ? try await Self.appliedMigrations(connection, logger) : nil
            }
        }
        guard let present = found else {
            throw StateStoreError(operation: operation, endpoint: endpoint, kind: .schema(.notInitialised(expected: latest)))
        }
        let database = present.last?.version ?? 0
        if database > latest {
            throw StateStoreError(operation: operation, endpoint: endpoint, kind: .schema(.newer(database: database, expected: latest)))
        }
        for migration in migrations {
            guard let row = present.first(where: { $0.version == migration.version }) else {
                throw StateStoreError(operation: operation, endpoint: endpoint, kind: .schema(.older(database: database, expected: latest)))
            }
            guard row.checksum == migration.checksum else {
                throw StateStoreError(operation: operation, endpoint: endpoint, kind: .schema(.modified(version: migration.version)))
            }
        }
        return latest
    }

    /// The rows of `schema_migrations`, by version (the table must exist).
    static func appliedMigrations(_ connection: PostgresConnection, _ logger: Logger) async throws -> [AppliedMigration] {
        try await connection.rows("SELECT version, checksum FROM schema_migrations ORDER BY version", logger).map {
            let (version, checksum) = try $0.decode((Int, String).self)
            return AppliedMigration(version: version, checksum: checksum)
        }
    }

    /// The list is numbered 1, 2, 3… in order: a programming error otherwise.
    static func requireOrdered(_ migrations: [SchemaMigration]) {
        for (index, migration) in migrations.enumerated() {
            precondition(migration.version == index + 1, "schema migrations must be numbered 1, 2, 3… in order")
        }
    }
}
