//! Checks of how the server is configured: risky settings (durability, autovacuum, memory,
//! timeouts, WAL) and security (superusers, trust authentication, TLS, schema privileges,
//! secrets stored in plain text).
//!
//! Settings are read from pg_settings, which any role may read; the value shown is the one
//! in force for tend's session (postgresql.conf, then database and role settings).
//! Thresholds of the "too small" checks are strict: the finding appears below `warning`.

use crate::check::{Category, Check, Rule, Severity, Unit};

pub static CHECKS: &[Check] = &[
    Check {
        id: "settings.fsync_off",
        category: Category::Settings,
        title: "fsync turned off",
        rule: Rule::Each(Severity::Critical),
        unit: Unit::None,
        warning: None,
        critical: None,
        sql: "SELECT name::text, NULL::float8, 'source: ' || coalesce(sourcefile || ':' || sourceline, source)
                FROM pg_settings WHERE name = 'fsync' AND setting = 'off'",
        finding: "fsync is off ({detail}): an operating system crash or a power loss can corrupt the whole cluster beyond repair",
        remedy: "Set `fsync = on` in postgresql.conf (or `ALTER SYSTEM SET fsync = on;`) and reload with `SELECT pg_reload_conf();`; if the server crashed while it was off, check the data (pg_amcheck) or restore from a backup.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "settings.full_page_writes_off",
        category: Category::Settings,
        title: "full_page_writes turned off",
        rule: Rule::Each(Severity::Critical),
        unit: Unit::None,
        warning: None,
        critical: None,
        sql: "SELECT name::text, NULL::float8, 'source: ' || coalesce(sourcefile || ':' || sourceline, source)
                FROM pg_settings WHERE name = 'full_page_writes' AND setting = 'off'",
        finding: "full_page_writes is off ({detail}): a crash in the middle of a page write leaves torn pages that recovery cannot repair",
        remedy: "Set `full_page_writes = on` (`ALTER SYSTEM SET full_page_writes = on;` then `SELECT pg_reload_conf();`); turn it off only on storage that guarantees atomic 8 kB writes (e.g. ZFS).",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "settings.synchronous_commit_off",
        category: Category::Settings,
        title: "synchronous_commit turned off",
        rule: Rule::Each(Severity::Info),
        unit: Unit::None,
        warning: None,
        critical: None,
        sql: "SELECT name::text, NULL::float8, 'source: ' || coalesce(sourcefile || ':' || sourceline, source)
                FROM pg_settings WHERE name = 'synchronous_commit' AND setting = 'off'",
        finding: "synchronous_commit is off ({detail}): commits are faster, but a crash loses the last few hundred milliseconds of committed transactions (the data stays consistent)",
        remedy: "If losing the last commits is not acceptable, `ALTER SYSTEM SET synchronous_commit = on;` and `SELECT pg_reload_conf();`, and turn it off only per transaction (`SET LOCAL synchronous_commit = off`) where the speed matters more.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "settings.autovacuum_off",
        category: Category::Settings,
        title: "autovacuum turned off",
        rule: Rule::Each(Severity::Critical),
        unit: Unit::None,
        warning: None,
        critical: None,
        sql: "SELECT name::text, NULL::float8, 'source: ' || coalesce(sourcefile || ':' || sourceline, source)
                FROM pg_settings WHERE name = 'autovacuum' AND setting = 'off'",
        finding: "autovacuum is off ({detail}): dead rows pile up, statistics go stale, and only the emergency anti-wraparound vacuum still runs",
        remedy: "`ALTER SYSTEM SET autovacuum = on;` and `SELECT pg_reload_conf();`; to calm a busy table tune its autovacuum storage parameters instead of turning autovacuum off.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "settings.track_counts_off",
        category: Category::Settings,
        title: "track_counts turned off",
        rule: Rule::Each(Severity::Warning),
        unit: Unit::None,
        warning: None,
        critical: None,
        sql: "SELECT name::text, NULL::float8, 'source: ' || coalesce(sourcefile || ':' || sourceline, source)
                FROM pg_settings WHERE name = 'track_counts' AND setting = 'off'",
        finding: "track_counts is off ({detail}): autovacuum cannot tell which tables need work, and the table and index statistics tend reads stay empty",
        remedy: "`ALTER SYSTEM SET track_counts = on;` and `SELECT pg_reload_conf();`, and remove any `ALTER DATABASE ... SET track_counts` or `ALTER ROLE ... SET track_counts`.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "settings.max_connections_high",
        category: Category::Settings,
        title: "a high max_connections",
        rule: Rule::AtLeast,
        unit: Unit::Count,
        warning: Some(500.0),
        critical: None,
        sql: "SELECT name::text, setting::float8, 'source: ' || coalesce(sourcefile || ':' || sourceline, source)
                FROM pg_settings WHERE name = 'max_connections'",
        finding: "max_connections is {value} ({detail}): every connection is a process with its own memory, and hundreds of active ones contend for locks and CPU",
        remedy: "Put a connection pooler (PgBouncer in transaction mode) in front of the database and lower max_connections to what the pooler needs (a restart).",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "settings.shared_buffers_small",
        category: Category::Settings,
        title: "a small shared_buffers",
        rule: Rule::AtMost,
        unit: Unit::Bytes,
        // Found below 128 MB, PostgreSQL's own default.
        warning: Some(134_217_728.0),
        critical: None,
        sql: "SELECT 'shared_buffers', pg_size_bytes(current_setting('shared_buffers'))::float8,
                     current_setting('shared_buffers')
               WHERE pg_size_bytes(current_setting('shared_buffers'))::float8 < $1",
        finding: "shared_buffers is only {value}: most reads go through the operating system's cache, and busy pages are evicted early",
        remedy: "Set shared_buffers to about 25% of the server's RAM (`ALTER SYSTEM SET shared_buffers = '2GB';`) and restart.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "settings.work_mem_risky",
        category: Category::Settings,
        title: "a large server-wide work_mem",
        rule: Rule::AtLeast,
        unit: Unit::Bytes,
        warning: Some(268_435_456.0),
        critical: None,
        sql: "SELECT 'work_mem', pg_size_bytes(current_setting('work_mem'))::float8,
                     'with max_connections = ' || current_setting('max_connections') || ', up to ' ||
                     pg_size_pretty(pg_size_bytes(current_setting('work_mem')) * current_setting('max_connections')::bigint) ||
                     ' if every connection runs one sort'",
        finding: "work_mem is {value} for every sort and hash of every query ({detail}): a burst of big queries can exhaust the server's memory",
        remedy: "Keep the server-wide work_mem modest (`ALTER SYSTEM SET work_mem = '32MB';` then `SELECT pg_reload_conf();`) and raise it only for the roles or sessions that need it (`ALTER ROLE reporting SET work_mem = '512MB';`).",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "settings.maintenance_work_mem_small",
        category: Category::Settings,
        title: "a small maintenance_work_mem",
        rule: Rule::Each(Severity::Info),
        unit: Unit::Bytes,
        // Found below 64 MB, PostgreSQL's own default.
        warning: Some(67_108_864.0),
        critical: None,
        sql: "SELECT 'maintenance_work_mem', pg_size_bytes(current_setting('maintenance_work_mem'))::float8,
                     current_setting('maintenance_work_mem')
               WHERE pg_size_bytes(current_setting('maintenance_work_mem'))::float8 < $1",
        finding: "maintenance_work_mem is only {value}: VACUUM has to scan indexes several times and CREATE INDEX sorts on disk",
        remedy: "Raise it to 256MB-1GB depending on RAM (`ALTER SYSTEM SET maintenance_work_mem = '512MB';` then `SELECT pg_reload_conf();`).",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "settings.idle_in_transaction_timeout_unset",
        category: Category::Settings,
        title: "no idle_in_transaction_session_timeout",
        rule: Rule::Each(Severity::Info),
        unit: Unit::None,
        warning: None,
        critical: None,
        // The session's reset value covers postgresql.conf and the settings of this database
        // and tend's role; pg_db_role_setting covers the other roles.
        sql: "SELECT name::text, NULL::float8, 'not in the server configuration, this database or any role'
                FROM pg_settings
               WHERE name = 'idle_in_transaction_session_timeout' AND reset_val = '0'
                 AND NOT EXISTS (
                     SELECT 1 FROM pg_db_role_setting s, unnest(s.setconfig) c
                      WHERE s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
                        AND split_part(c, '=', 1) = 'idle_in_transaction_session_timeout'
                        AND split_part(c, '=', 2) !~ '^0[a-z]*$')",
        finding: "idle_in_transaction_session_timeout is not set ({detail}): a session that forgets to commit holds its locks and blocks vacuum until someone ends it",
        remedy: "Set it for the application's role, e.g. `ALTER ROLE app SET idle_in_transaction_session_timeout = '5min';` (new sessions pick it up).",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "settings.statement_timeout_unset",
        category: Category::Settings,
        title: "no statement_timeout",
        rule: Rule::Each(Severity::Info),
        unit: Unit::None,
        warning: None,
        critical: None,
        // reset_val, not the setting: tend's own session runs with a 5 s statement_timeout.
        sql: "SELECT name::text, NULL::float8, 'not in the server configuration, this database or any role'
                FROM pg_settings
               WHERE name = 'statement_timeout' AND reset_val = '0'
                 AND NOT EXISTS (
                     SELECT 1 FROM pg_db_role_setting s, unnest(s.setconfig) c
                      WHERE s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
                        AND split_part(c, '=', 1) = 'statement_timeout'
                        AND split_part(c, '=', 2) !~ '^0[a-z]*$')",
        finding: "statement_timeout is not set ({detail}): a runaway query runs, and holds its locks, until someone cancels it",
        remedy: "Set it for the application's role, above its slowest legitimate query, e.g. `ALTER ROLE app SET statement_timeout = '30s';` (new sessions pick it up).",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "settings.checkpoint_timeout_short",
        category: Category::Settings,
        title: "a short checkpoint_timeout",
        rule: Rule::AtMost,
        unit: Unit::Seconds,
        // Found below 5 min, PostgreSQL's own default.
        warning: Some(300.0),
        critical: None,
        sql: "SELECT name::text, setting::float8, 'source: ' || coalesce(sourcefile || ':' || sourceline, source)
                FROM pg_settings WHERE name = 'checkpoint_timeout' AND setting::float8 < $1",
        finding: "checkpoint_timeout is only {value} ({detail}): frequent checkpoints write the same pages again and again, and each one is followed by a burst of full-page images in the WAL",
        remedy: "Raise it to 15min-30min (`ALTER SYSTEM SET checkpoint_timeout = '15min';` then `SELECT pg_reload_conf();`), with max_wal_size large enough that checkpoints are timed, not forced.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "settings.max_wal_size_small",
        category: Category::Settings,
        title: "a small max_wal_size",
        rule: Rule::Each(Severity::Info),
        unit: Unit::Bytes,
        // Found below 1 GB, PostgreSQL's own default.
        warning: Some(1_073_741_824.0),
        critical: None,
        sql: "SELECT 'max_wal_size', pg_size_bytes(current_setting('max_wal_size'))::float8,
                     current_setting('max_wal_size')
               WHERE pg_size_bytes(current_setting('max_wal_size'))::float8 < $1",
        finding: "max_wal_size is only {value}: write bursts force checkpoints early, which costs I/O and WAL volume",
        remedy: "Raise it (`ALTER SYSTEM SET max_wal_size = '4GB';` then `SELECT pg_reload_conf();`); the log's \"checkpoints are occurring too frequently\" hints say by how much.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "settings.wal_level_minimal",
        category: Category::Settings,
        title: "wal_level = minimal",
        rule: Rule::Each(Severity::Warning),
        unit: Unit::None,
        warning: None,
        critical: None,
        sql: "SELECT name::text, NULL::float8, 'source: ' || coalesce(sourcefile || ':' || sourceline, source)
                FROM pg_settings WHERE name = 'wal_level' AND setting = 'minimal'",
        finding: "wal_level is minimal ({detail}): no point-in-time recovery, no physical or logical replicas, and base backups cannot be restored past their end",
        remedy: "Set `wal_level = replica` (`ALTER SYSTEM SET wal_level = 'replica';`) and restart, then set up WAL archiving or a backup tool (pgBackRest, Barman).",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "settings.data_checksums_off",
        category: Category::Settings,
        title: "data checksums disabled",
        rule: Rule::Each(Severity::Info),
        unit: Unit::None,
        warning: None,
        critical: None,
        sql: "SELECT name::text, NULL::float8, 'set when the cluster was created'
                FROM pg_settings WHERE name = 'data_checksums' AND setting = 'off'",
        finding: "data checksums are off ({detail}): corruption by the disk or the file system goes unnoticed until it breaks a query",
        remedy: "Enable them on a stopped cluster with `pg_checksums --enable -D $PGDATA` (it rewrites every file: plan the downtime, or do it on a replica and fail over).",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "settings.log_lock_waits_off",
        category: Category::Settings,
        title: "log_lock_waits turned off",
        rule: Rule::Each(Severity::Info),
        unit: Unit::None,
        warning: None,
        critical: None,
        sql: "SELECT name::text, NULL::float8, 'source: ' || coalesce(sourcefile || ':' || sourceline, source)
                FROM pg_settings WHERE name = 'log_lock_waits' AND setting = 'off'",
        finding: "log_lock_waits is off ({detail}): lock waits longer than deadlock_timeout leave no trace in the log",
        remedy: "`ALTER SYSTEM SET log_lock_waits = on;` and `SELECT pg_reload_conf();`: the log then names the waiting and the blocking statements.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "settings.pending_restart",
        category: Category::Settings,
        title: "settings changed but waiting for a restart",
        rule: Rule::Each(Severity::Warning),
        unit: Unit::None,
        warning: None,
        critical: None,
        sql: "SELECT name::text, NULL::float8, setting || coalesce(' ' || unit, '')
                FROM pg_settings WHERE pending_restart
               ORDER BY name LIMIT 50",
        finding: "{subject} was changed in the configuration, but the server still runs with {detail} until it restarts",
        remedy: "Restart the server in a quiet moment (`pg_ctl restart` or the service manager), or undo the change (`ALTER SYSTEM RESET name;` or edit postgresql.conf) and `SELECT pg_reload_conf();`.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "security.superuser_app",
        category: Category::Security,
        title: "connecting as a superuser",
        rule: Rule::Each(Severity::Warning),
        unit: Unit::None,
        warning: None,
        critical: None,
        sql: "SELECT rolname::text, NULL::float8, 'the role of this connection'
                FROM pg_roles WHERE rolname = current_user AND rolsuper",
        finding: "this connection's role {subject} is a superuser: an application connecting as it bypasses every permission, and one SQL injection owns the whole server",
        remedy: "Give the application a role of its own that owns its schema but is not a superuser (`CREATE ROLE app LOGIN PASSWORD '...'; ALTER SCHEMA public OWNER TO app;`), and keep superusers for administration.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "security.trust_auth",
        category: Category::Security,
        title: "trust lines in pg_hba.conf (readable by superusers only)",
        // 1: local socket or loopback only (warning); 2: reachable from other hosts (critical).
        rule: Rule::AtLeast,
        unit: Unit::None,
        warning: Some(1.0),
        critical: Some(2.0),
        sql: "SELECT 'line ' || line_number,
                     (CASE WHEN type = 'local' THEN 1
                           WHEN netmask IS NULL THEN CASE WHEN address IN ('samehost', 'localhost') THEN 1 ELSE 2 END
                           WHEN address::inet & netmask::inet <<= inet '127.0.0.0/8'
                            AND address::inet | ~ netmask::inet <<= inet '127.0.0.0/8' THEN 1
                           WHEN address::inet & netmask::inet = inet '::1'
                            AND address::inet | ~ netmask::inet = inet '::1' THEN 1
                           ELSE 2 END)::float8,
                     type || ' ' || array_to_string(database, ',') || ' ' || array_to_string(user_name, ',')
                       || coalesce(' ' || address, '') || coalesce('/' || netmask, '')
                FROM pg_hba_file_rules
               WHERE auth_method = 'trust' AND error IS NULL
               ORDER BY line_number LIMIT 50",
        finding: "pg_hba.conf {subject} lets anyone who reaches it connect as any listed role without a password ({detail})",
        remedy: "Replace `trust` with `scram-sha-256` (or `peer` for local sockets) in pg_hba.conf, give the roles passwords, and `SELECT pg_reload_conf();`.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "security.ssl_off",
        category: Category::Security,
        title: "TLS off while listening beyond localhost",
        // The value counts the listen addresses that are not loopback.
        rule: Rule::AtLeast,
        unit: Unit::Count,
        warning: Some(1.0),
        critical: None,
        sql: "SELECT 'ssl',
                     (SELECT count(*) FROM unnest(string_to_array(current_setting('listen_addresses'), ',')) a(addr)
                       WHERE btrim(addr) NOT IN ('', 'localhost', '::1') AND btrim(addr) !~ '^127\\.')::float8,
                     'listen_addresses = ''' || current_setting('listen_addresses') || ''''
               WHERE current_setting('ssl') = 'off'",
        finding: "ssl is off while the server listens on other hosts' networks ({detail}): passwords and data cross the network in clear text",
        remedy: "Install a certificate and key, set `ssl = on` and reload, then require TLS with `hostssl` lines in pg_hba.conf (and `sslmode=verify-full` in clients).",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "security.public_schema_create",
        category: Category::Security,
        title: "schemas where every role may create objects",
        rule: Rule::Each(Severity::Warning),
        unit: Unit::None,
        warning: None,
        critical: None,
        sql: "SELECT n.nspname::text, NULL::float8, 'owned by ' || pg_get_userbyid(n.nspowner)
                FROM pg_namespace n
               WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
                 AND has_schema_privilege('public', n.oid, 'CREATE')
               ORDER BY 1 LIMIT 50",
        finding: "every role (PUBLIC) may create objects in the schema {subject} ({detail}): one can plant a function or operator that another role's queries then run (CVE-2018-1058)",
        remedy: "`REVOKE CREATE ON SCHEMA name FROM PUBLIC;` and grant CREATE only to the roles that own objects there.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "security.plaintext_secrets",
        category: Category::Security,
        title: "columns named like plain-text passwords, secrets or tokens",
        rule: Rule::Each(Severity::Warning),
        unit: Unit::None,
        warning: None,
        critical: None,
        // Names and types only: reading the data would be slow and intrusive.
        sql: "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) || '.' || quote_ident(a.attname),
                     NULL::float8,
                     format_type(a.atttypid, a.atttypmod)
                FROM pg_attribute a
                JOIN pg_class c ON c.oid = a.attrelid
                JOIN pg_namespace n ON n.oid = c.relnamespace
                JOIN pg_type t ON t.oid = a.atttypid
               WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
                 AND a.attnum > 0 AND NOT a.attisdropped
                 AND n.nspname !~ '^pg_' AND n.nspname NOT IN ('information_schema', 'tend')
                 AND t.typcategory = 'S'
                 AND lower(a.attname) ~ '(password|passwd|passwort|passphrase|secret|token|api_?key|access_?key|private_?key|secret_?key|signing_?key|credentials?)$'
                 AND lower(a.attname) !~ '(hash|digest|encrypt|crypt|cipher)|(^|_)enc(_|$)'
               ORDER BY 1 LIMIT 50",
        finding: "the column {subject} ({detail}) is named like a password, secret or token stored in plain text",
        remedy: "Store a slow hash for passwords (bcrypt, argon2) and a hash or an encrypted value for tokens and keys, and rename the column to say so (password_hash); tend judges by names only and never reads the data.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "security.weak_password_hashing",
        category: Category::Security,
        title: "MD5 password hashing",
        rule: Rule::Each(Severity::Warning),
        unit: Unit::None,
        warning: None,
        critical: None,
        // pg_authid is for superusers only: the roles are read (through query_to_xml, so that
        // other roles still get the setting's row rather than an error) only by a superuser.
        sql: "SELECT name::text, NULL::float8, 'new passwords are stored as MD5 hashes'
                FROM pg_settings WHERE name = 'password_encryption' AND setting = 'md5'
              UNION ALL
              SELECT 'role ' || convert_from(decode(r.hex, 'hex'), 'UTF8'), NULL::float8,
                     'its password is stored as an MD5 hash'
                FROM unnest(CASE WHEN current_setting('is_superuser') = 'on' THEN
                       xpath('//n/text()', query_to_xml(
                         'SELECT encode(convert_to(rolname, ''UTF8''), ''hex'') AS n FROM pg_authid
                           WHERE rolcanlogin AND rolpassword LIKE ''md5%'' ORDER BY rolname LIMIT 50',
                         false, false, ''))::text[]
                     END) AS r(hex)",
        finding: "{subject}: {detail}, which a stolen hash or a sniffed handshake can replay or crack",
        remedy: "`ALTER SYSTEM SET password_encryption = 'scram-sha-256';` and reload, have each listed role set its password again (`\\password` in psql), then switch `md5` lines in pg_hba.conf to `scram-sha-256`.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "security.superusers_many",
        category: Category::Security,
        title: "superuser roles that can log in",
        rule: Rule::AtLeast,
        unit: Unit::Count,
        warning: Some(4.0),
        critical: None,
        sql: "SELECT 'superusers', count(*)::float8, string_agg(rolname::text, ', ' ORDER BY rolname)
                FROM pg_roles WHERE rolsuper AND rolcanlogin",
        finding: "{value} roles can log in as superusers ({detail}): each is a password that unlocks everything",
        remedy: "Keep one or two: `ALTER ROLE name NOSUPERUSER;` for the others, granting them pg_monitor, pg_signal_backend or ownership of what they manage instead.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "security.listen_all",
        category: Category::Security,
        title: "listening on every network interface",
        rule: Rule::Each(Severity::Info),
        unit: Unit::None,
        warning: None,
        critical: None,
        sql: "SELECT 'listen_addresses', NULL::float8, current_setting('listen_addresses')
               WHERE EXISTS (SELECT 1 FROM unnest(string_to_array(current_setting('listen_addresses'), ',')) a(addr)
                              WHERE btrim(addr) IN ('*', '0.0.0.0', '::'))",
        finding: "the server listens on every interface (listen_addresses = '{detail}'): pg_hba.conf and the firewall are all that keep other networks out",
        remedy: "List only the interfaces clients use (`ALTER SYSTEM SET listen_addresses = 'localhost,10.0.0.5';`, a restart), and make sure no pg_hba.conf line uses `trust` for host connections.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
];
