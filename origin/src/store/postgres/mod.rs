//! The PostgreSQL metadata backend: a pool of async connections (tokio-postgres through
//! deadpool), the schema applied by embedded migrations at open, one file per domain here.
//!
//! Records are JSONB columns beside the keys and indexes the queries need, so every record
//! type is the one the embedded backend stores. Each guarantee of [`crate::store`] is a
//! transaction here:
//!
//! - a track and its renditions are published in one transaction;
//! - a playlist update is `UPDATE … WHERE version = $seen`, re-run on the newer record when
//!   another write got there first;
//! - an event batch, a library add and an offline-device admission each run in a transaction
//!   holding an advisory lock on the account (`pg_advisory_xact_lock`), so two batches of one
//!   account serialize while different accounts proceed in parallel;
//! - a refresh token is taken with `DELETE … RETURNING`.
//!
//! A commit is durable (PostgreSQL's default `synchronous_commit = on`). A connection the
//! server closed (a restart, a failover) is dropped by the pool and replaced on next use;
//! while the server cannot be reached, calls fail with [`StoreError::Unavailable`], which the
//! API answers `503`.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::StoreError;
use coordination::note_changes;

mod accounts;
mod catalog;
mod coordination;
mod devices;
mod libraries;
mod listening;
mod playlists;

/// The schema, in order. A database is at the version of the last one applied.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "init", include_str!("migrations/0001_init.sql")),
    (2, "changes", include_str!("migrations/0002_changes.sql")),
    (
        3,
        "streams_recorded",
        include_str!("migrations/0003_streams_recorded.sql"),
    ),
    (
        4,
        "published",
        include_str!("migrations/0004_published.sql"),
    ),
    (
        5,
        "album_places",
        include_str!("migrations/0005_album_places.sql"),
    ),
    (6, "images", include_str!("migrations/0006_images.sql")),
    (7, "players", include_str!("migrations/0007_players.sql")),
    (
        8,
        "app_credentials",
        include_str!("migrations/0008_app_credentials.sql"),
    ),
];

/// Connections kept by the pool (each origin process; PostgreSQL's default limit is 100).
pub const POOL_SIZE_DEFAULT: usize = 16;

/// How long a call waits for a free connection, or for a new one, before answering
/// unavailable.
const POOL_WAIT: Duration = Duration::from_secs(5);

/// The advisory lock key migrations hold (any constant unique to Chorus).
const MIGRATION_LOCK: i64 = 0x43_48_4f_52_55_53; // "CHORUS"

/// The PostgreSQL backend; implements every metadata domain of [`crate::store`].
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    describe: String,
    /// Connects the leadership connection.
    config: tokio_postgres::Config,
    /// The leadership connection ([`crate::store::Coordination::lead`]).
    leader: std::sync::Arc<tokio::sync::Mutex<Option<coordination::Leader>>>,
    /// Names this process's writes of streams (random per open store), so it can ask for
    /// the streams the other instances recorded.
    instance: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("database", &self.describe)
            .finish()
    }
}

/// `url` without its password, for logs.
pub fn redact(url: &str) -> String {
    match tokio_postgres::Config::from_str(url) {
        Ok(config) => {
            let hosts: Vec<String> = config
                .get_hosts()
                .iter()
                .map(|host| match host {
                    tokio_postgres::config::Host::Tcp(name) => name.clone(),
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                })
                .collect();
            format!(
                "postgres://{}@{}:{}/{}",
                config.get_user().unwrap_or("?"),
                hosts.join(","),
                config
                    .get_ports()
                    .first()
                    .map_or("5432".to_string(), u16::to_string),
                config.get_dbname().unwrap_or("?"),
            )
        }
        Err(_) => "postgres://(unparsable)".to_string(),
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`), with a
    /// pool of `pool_size` connections, and brings its schema up to date.
    pub async fn open(url: &str, pool_size: usize) -> Result<Self, StoreError> {
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|error| StoreError::Backend(format!("database URL: {error}")))?;
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(StoreError::Backend(
                "sslmode=require: TLS to PostgreSQL is not built in; reach the database over a \
                 private network, loopback or a TLS tunnel"
                    .into(),
            ));
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .recycle_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|error| StoreError::Backend(format!("database pool: {error}")))?;
        let store = Self {
            pool,
            describe: redact(url),
            config,
            leader: Default::default(),
            instance: format!("{:032x}", rand::random::<u128>()),
        };
        store.migrate().await?;
        store.fill_pool(pool_size).await;
        Ok(store)
    }

    /// Opens the pool's connections now, together: each costs the server a process and a few
    /// milliseconds, which the first burst of requests after a start should not wait for.
    /// Best effort: a database that refuses more connections leaves the pool smaller.
    async fn fill_pool(&self, pool_size: usize) {
        let opened = futures_util::future::join_all((0..pool_size).map(|_| self.pool.get())).await;
        let failed = opened.iter().filter(|opened| opened.is_err()).count();
        if failed > 0 {
            tracing::warn!(
                failed,
                pool_size,
                "could not open every pooled database connection"
            );
        }
    }

    /// Where the database is, without the password.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// A pooled connection.
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// The rows of one statement on a pooled connection, outside a transaction (the statement
    /// is prepared once per connection).
    async fn rows(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(db_error)?;
        client.query(&statement, params).await.map_err(db_error)
    }

    /// The row of one statement that returns at most one, as [`PostgresStore::rows`].
    async fn row(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(db_error)?;
        client.query_opt(&statement, params).await.map_err(db_error)
    }

    /// Runs one statement as [`PostgresStore::rows`] does; how many rows it touched.
    async fn run(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(db_error)?;
        client.execute(&statement, params).await.map_err(db_error)
    }

    /// Applies the migrations this database lacks, under an advisory lock (origins starting
    /// together migrate once). Refuses a database whose schema is newer than this binary.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(db_error)?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db_error)?;
        transaction
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS chorus_schema (
                     version    INTEGER PRIMARY KEY,
                     name       TEXT NOT NULL,
                     applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                 )",
            )
            .await
            .map_err(db_error)?;
        let applied: Vec<i32> = transaction
            .query("SELECT version FROM chorus_schema", &[])
            .await
            .map_err(db_error)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let known = MIGRATIONS.last().map_or(0, |(version, _, _)| *version);
        if let Some(newer) = applied.iter().find(|version| **version > known) {
            return Err(StoreError::Backend(format!(
                "the database schema is at version {newer}, newer than this binary knows \
                 ({known}): upgrade chorus"
            )));
        }
        for (version, name, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            transaction.batch_execute(sql).await.map_err(db_error)?;
            transaction
                .execute(
                    "INSERT INTO chorus_schema (version, name) VALUES ($1, $2)",
                    &[version, name],
                )
                .await
                .map_err(db_error)?;
            tracing::info!(version, name, "database migrated");
        }
        transaction.commit().await.map_err(db_error)
    }
}

/// A driver error as a [`StoreError`]: the server being gone or shutting down is
/// [`StoreError::Unavailable`] (retry later); a serialization failure or deadlock is a
/// [`StoreError::Transaction`]; anything else is a backend failure.
pub(crate) fn db_error(error: tokio_postgres::Error) -> StoreError {
    if let Some(db) = error.as_db_error() {
        let code = db.code();
        if [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::CONNECTION_FAILURE,
        ]
        .contains(code)
        {
            return StoreError::Unavailable(error.to_string());
        }
        if [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
        ]
        .contains(code)
        {
            return StoreError::Transaction(error.to_string());
        }
        return StoreError::Backend(error.to_string());
    }
    // No server error: the connection broke or could not be made.
    StoreError::Unavailable(error.to_string())
}

fn pool_error(error: deadpool_postgres::PoolError) -> StoreError {
    match error {
        deadpool_postgres::PoolError::Backend(error) => db_error(error),
        other => StoreError::Unavailable(format!("database pool: {other}")),
    }
}

/// A `u64` as PostgreSQL's `BIGINT` (times and counts never reach 2^63).
fn big(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A `BIGINT` back as `u64`.
fn unbig(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A `usize` bound as `BIGINT` (`LIMIT`, `OFFSET`).
fn count(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The advisory lock key of `scope` for `account` (`hashtextextended` in SQL would do; this
/// keeps the lock key visible in Rust).
fn account_lock(scope: &str, account: &str) -> i64 {
    let hash = blake3::hash(format!("{scope}\0{account}").as_bytes());
    i64::from_le_bytes(hash.as_bytes()[..8].try_into().unwrap_or([0; 8]))
}
