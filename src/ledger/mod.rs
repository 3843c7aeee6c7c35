//! The ledger: a SQLite file that remembers every de-duplicated response
//! and how far each transcript has been read, so that repeated runs read
//! only new bytes and history outlives Claude Code's transcript cleanup.
//!
//! - [`schema`]: tables and migrations;
//! - [`ingest`]: incremental, concurrent, crash-safe reading of transcripts;
//! - [`query`]: token groups for a window of time (attribution and prices
//!   are applied by the caller, so config changes re-price all history);
//! - [`notices`]: what has already been said (alerts, hook warnings);
//! - [`outbox`]: claiming alert events once, and `--command` deliveries;
//! - [`halts`]: sessions the kill switch halted;
//! - [`store`]: the [`Store`] trait, what the core asks of a ledger.

pub mod configs;
pub mod halts;
pub mod ingest;
pub mod notices;
pub mod outbox;
pub mod query;
pub mod schema;
pub mod store;
pub mod team;

pub use store::Store;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// Ledger errors; `check` turns every one into a refusal.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: not an octo-budget ledger (not a SQLite database); move it away or pass --ledger")]
    NotADatabase { path: PathBuf },
    #[error("ledger {path}: schema version {found} is newer than this octo-budget understands ({supported}); upgrade octo-budget")]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("ledger {path}: not an octo-budget ledger (a SQLite database of another program); left unchanged; point --ledger (or `ledger:`) at another file")]
    Foreign { path: PathBuf },
    #[error("ledger {path}: busy (another process held its lock for longer than {waited_ms} ms)")]
    Busy { path: PathBuf, waited_ms: u64 },
    #[error("ledger {path}: cannot write (read-only file or folder, or disk full): {detail}")]
    ReadOnly { path: PathBuf, detail: String },
    #[error("ledger {path}: {error}")]
    Sqlite {
        path: PathBuf,
        error: rusqlite::Error,
    },
    /// A team ledger's server (named by its URI, which never holds a
    /// password) refused or could not be reached.
    #[error("team ledger {server}: {detail}")]
    Server { server: String, detail: String },
    #[error("ledger {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, LedgerError>;

/// The WAL size (about 125 pages of a new ledger, 250 of one created with
/// 4 KiB pages) above which a write truncates it.
pub const WAL_LIMIT: u64 = 1 << 20;

/// How many prepared statements a connection keeps for reuse.
const STATEMENT_CACHE: usize = 128;

/// Every place, by id, as the ledger hands them out (shared: see
/// [`Ledger::places`]).
pub type Places = Arc<HashMap<i64, query::Place>>;

/// An open ledger.
pub struct Ledger {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
    pub(crate) busy: Duration,
    /// The places this connection has read, and the largest id among
    /// them (see [`Ledger::places`]).
    pub(crate) places_seen: RefCell<Option<(i64, Places)>>,
}

impl Ledger {
    /// Opens (creating if needed) the ledger at `path`, waiting at most
    /// `busy` for other processes' locks.
    pub fn open(path: &Path, busy: Duration) -> Result<Ledger> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| LedgerError::Io {
                path: path.to_path_buf(),
                error: e,
            })?;
        }
        Ledger::connect(path, busy, OpenFlags::SQLITE_OPEN_CREATE)?.ready()
    }

    /// The ledger at `path` if it exists and is at this binary's schema
    /// version, else None, with nothing created or migrated: for a lookup
    /// that may be skipped (the hook's stored config), so that a migration
    /// still runs where the caller has loaded its config (and knows how to
    /// answer should it take too long).
    pub fn open_if_current(path: &Path, busy: Duration) -> Result<Option<Ledger>> {
        let ledger = Ledger::connect(path, busy, OpenFlags::empty())?;
        if !ledger.is_current()? {
            return Ok(None);
        }
        ledger.ready().map(Some)
    }

    /// A connection to `path` (created if `create` says so), waiting at
    /// most `busy` for locks; not yet checked or migrated.
    fn connect(path: &Path, busy: Duration, create: OpenFlags) -> Result<Ledger> {
        configure_sqlite();
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | create | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| classify(path, busy, e))?;
        let ledger = Ledger {
            conn,
            path: path.to_path_buf(),
            busy,
            places_seen: Default::default(),
        };
        ledger.conn.busy_timeout(busy).map_err(|e| ledger.err(e))?;
        // Room for every statement the code prepares through the cache
        // (rusqlite keeps 16): with fewer, a loop over more statements, or
        // the resident helper's calls, prepare them again and again.
        ledger
            .conn
            .set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // Plans that do not depend on bound values: SQLite otherwise
        // prepares a statement again whenever a new value is bound to a
        // `LIMIT ?` (and a `column = ?` when the value moves to or from 0
        // or 1), which the ledger's statements gain nothing from.
        ledger
            .conn
            .set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
                true,
            )
            .map_err(|e| ledger.err(e))?;
        Ok(ledger)
    }

    /// The connection checked, migrated and set up for use.
    fn ready(mut self) -> Result<Ledger> {
        // First: a database of another program is refused untouched.
        schema::migrate(&mut self)?;
        // Leave the WAL for the next process instead of checkpointing (and
        // syncing) on every close: the hook opens the ledger on every call.
        // SQLite's automatic checkpoints keep the WAL small.
        self.conn
            .set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            )
            .map_err(|e| self.err(e))?;
        Ok(self)
    }

    /// Folds the WAL into the database and truncates it, after a large
    /// write, so that the next process (the hook) does not have to read a
    /// long log when it opens the ledger. Best effort: a reader holding the
    /// log open only makes this a partial checkpoint.
    pub fn checkpoint(&self) {
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            });
    }

    /// Truncates the WAL once it holds more than [`WAL_LIMIT`] bytes,
    /// after a write. Every process that opens the ledger first reads every
    /// valid frame of the WAL (the hook opens it on every call), and a
    /// process that finds it there counts none of it as checkpointed (SQLite
    /// rebuilds its index): without this, a WAL that no process truncates
    /// grows for ever, and every later commit copies all of it into the
    /// database again (two fsyncs) on top of that read.
    pub fn checkpoint_if_large(&self) {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_LIMIT) {
            // Never wait for other processes' readers or writer here (the
            // hook has a deadline): a busy ledger is checkpointed by a
            // later write.
            let _ = self.without_waiting(|| self.checkpoint());
        }
    }

    /// Runs `f` with this connection waiting for no other process's lock
    /// (busy at once), then waiting again as it did before.
    pub(crate) fn without_waiting<T>(&self, f: impl FnOnce() -> T) -> rusqlite::Result<T> {
        self.conn.busy_timeout(Duration::ZERO)?;
        let out = f();
        let _ = self.conn.busy_timeout(self.busy);
        Ok(out)
    }

    /// How long this connection waits for another process's lock from now
    /// on.
    pub fn set_busy(&mut self, busy: Duration) -> Result<()> {
        self.conn.busy_timeout(busy).map_err(|e| self.err(e))?;
        self.busy = busy;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this connection holds a marked ledger at this binary's
    /// schema version (nothing to migrate; a connection kept between calls
    /// asks again, as another process may have migrated it since): one
    /// cached statement.
    pub fn is_current(&self) -> Result<bool> {
        let (version, app): (i64, i64) = self
            .conn
            .prepare_cached(
                "SELECT user_version, application_id FROM pragma_user_version, pragma_application_id",
            )
            .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
            .map_err(|e| self.err(e))?;
        Ok(app == schema::APPLICATION_ID && version == schema::VERSION)
    }

    /// No transaction open on this connection.
    pub fn is_idle(&self) -> bool {
        self.conn.is_autocommit()
    }

    pub(crate) fn err(&self, e: rusqlite::Error) -> LedgerError {
        classify(&self.path, self.busy, e)
    }
}

/// Process-wide SQLite settings, before the first connection: no memory
/// statistics (SQLite otherwise takes a mutex and counts on every
/// allocation; a hook call makes thousands while SQLite parses the schema
/// and its statements). Once per process; refused harmlessly
/// (SQLITE_MISUSE) if SQLite was initialised already.
fn configure_sqlite() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: called before this process opens any connection (the
        // only rule sqlite3_config has); it changes a global setting only.
        unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS,
                0 as std::ffi::c_int,
            );
        }
    });
}

/// Distinct strings (session ids, model names, branches), numbered in the
/// order first seen: hot loops over thousands of rows then hash and
/// compare integers, not strings.
#[derive(Debug, Default)]
pub(crate) struct Names {
    ids: std::collections::HashMap<String, u32, foldhash::fast::RandomState>,
    names: Vec<String>,
}

impl Names {
    pub(crate) fn id(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.ids.get(name) {
            return i;
        }
        let i = u32::try_from(self.names.len()).expect("fewer than 2^32 names");
        self.names.push(name.to_owned());
        self.ids.insert(name.to_owned(), i);
        i
    }

    pub(crate) fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// Every name, indexed by its id.
    pub(crate) fn all(&self) -> &[String] {
        &self.names
    }
}

/// The six token columns of a row (`input, output, cache_write_5m,
/// cache_write_1h, cache_read, web_search`), starting at column `first`.
pub(crate) fn usage_at(
    row: &rusqlite::Row<'_>,
    first: usize,
) -> rusqlite::Result<crate::transcript::Usage> {
    let t = |i: usize| row.get::<_, i64>(first + i).map(|v| v.max(0) as u64);
    Ok(crate::transcript::Usage {
        input: t(0)?,
        output: t(1)?,
        cache_write_5m: t(2)?,
        cache_write_1h: t(3)?,
        cache_read: t(4)?,
        web_search: t(5)?,
    })
}

/// Sorts SQLite's errors into the cases a user can act on.
pub(crate) fn classify(path: &Path, busy: Duration, e: rusqlite::Error) -> LedgerError {
    use rusqlite::ErrorCode as C;
    let path = path.to_path_buf();
    match e.sqlite_error_code() {
        Some(C::NotADatabase) => LedgerError::NotADatabase { path },
        Some(C::DatabaseBusy) | Some(C::DatabaseLocked) => LedgerError::Busy {
            path,
            waited_ms: busy.as_millis() as u64,
        },
        Some(C::ReadOnly)
        | Some(C::CannotOpen)
        | Some(C::PermissionDenied)
        | Some(C::DiskFull)
        | Some(C::SystemIoFailure) => LedgerError::ReadOnly {
            path,
            detail: e.to_string(),
        },
        _ => LedgerError::Sqlite { path, error: e },
    }
}
