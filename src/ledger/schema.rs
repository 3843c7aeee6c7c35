//! Tables and migrations. The schema version is SQLite's `user_version`;
//! `application_id` marks the file as an octo-budget ledger, so that a
//! database of another program given as `--ledger` is refused, never
//! changed. A ledger written before the mark existed is recognised by its
//! tables and marked by the next process that opens it (not a schema
//! version: the tables do not change).
//!
//! - `files`: per transcript, its identity (device, inode), size, mtime,
//!   ctime (5), the offset after the last complete line read, a hash of its
//!   first bytes and of those before the offset, and how many lines were
//!   skipped as malformed; one row per file, whatever paths reach it (5);
//! - `places`: each distinct (cwd, transcript folder) a response ran in,
//!   with the cwd's real path on this machine when it differs (5);
//! - `sessions`: the first cwd seen per session (for records without one);
//! - `responses`: one row per de-duplicated response (or advisor
//!   iteration), one per (`message_id`, `request_id`); rows are appended
//!   in arrival order (an integer key) and found through narrow indexes,
//!   which keeps a large first load from reshuffling wide rows; a message's
//!   rows are found by `message_hash` (10), a 64-bit hash of its id, whose
//!   index a first load builds in a third of the time the index of the
//!   two ids took (sorting integers, not strings): the ingest, the only
//!   writer, looks a response's message up before it writes, inside its
//!   write transaction, so the pair stays unique without a unique index;
//! - `rollup`: the same tokens summed per 15-minute UTC bucket, place,
//!   session, model, pricing flags and (12) git branch, kept in step with
//!   `responses` in the same transactions so that a month, or a branch
//!   over all time, is a few hundred rows to read;
//! - `notices`: alerts and hook warnings already given;
//! - `alert_outbox` (2): `alerts --command` events found but not yet
//!   delivered, with the run that is delivering them (a lease);
//! - `meta` (4): facts about the ledger (`history_read`: all transcripts
//!   found were read through once, so `check` reads only its session);
//! - `halts` (6): sessions the kill switch has halted, with the reason, so
//!   every later call of the session (its subagents too) is halted until a
//!   new prompt passes the check;
//! - `responses.branch` (7): each response's git branch ('' for none);
//!   `session_branches` (7): per session, the branch of its latest
//!   response that named one, for responses without `gitBranch`. Until 12
//!   the rollup had no branch, and `check`'s branch caps and `report --by
//!   branch` read the responses through an index on (branch, ts_ms); 12
//!   puts the branch in the rollup's key (a session that changes branch
//!   within a bucket has a row per branch there) and drops that index,
//!   which a first load spent 5-8% of its time building;
//! - `cost_states` (8): Claude Code's own totals (`cost-state` records) per
//!   session, count (`startTime`), model and end of the run they close (the
//!   time of the latest response before them in the file), with the
//!   session's place;
//! - `unwritten` (8): what each run adds to its count's spend beyond the
//!   transcribed responses, with its session's branch (derived from
//!   `cost_states`, `responses` and `session_branches`, computed again by
//!   every ingest for the sessions it changed);
//! - `session_links` (8): pairs of sessions whose files hold the same
//!   response (a fork's copies of its parent's), both ways: the row keeps
//!   one session id, the link lets the other's `cost-state` find it;
//! - `spend_cache` (9): priced spend of one budget scope (an arm or the
//!   total, one calendar period, one price table and attribution) over the
//!   whole UTC days before `upto_ms`, so that `check` prices only today's
//!   rollup rows; the ingest transaction that changes a rollup bucket
//!   before an entry's `upto_ms` (or any session's cwd) deletes the entry
//!   and bumps `meta.rollup_gen`, and an entry is written only if
//!   `rollup_gen` is still what it was when its rows were read;
//! - `config_cache` (11): budgets.yaml as validated, by a hash of the file
//!   and of what its parse depends on (`config::cached`), so that the hook
//!   does not parse YAML on every call; the newest few entries are kept.

use rusqlite::{Connection, TransactionBehavior};

use super::{Ledger, LedgerError, Result};

/// The newest schema this binary writes and understands.
pub const VERSION: i64 = 12;

/// `PRAGMA application_id` of an octo-budget ledger: "OCTB" in ASCII.
pub const APPLICATION_ID: i64 = 0x4F43_5442;

/// Tables every octo-budget ledger has had since schema 1.
const OWN_TABLES: [&str; 6] = [
    "files",
    "places",
    "sessions",
    "responses",
    "rollup",
    "notices",
];

/// The indexes of `responses` (a first load drops them and builds them
/// again at its end): a message's rows (migration 10), and by time
/// (migration 1).
pub const RESPONSES_MESSAGE_INDEX: &str =
    "CREATE INDEX responses_message ON responses (message_hash)";
pub const RESPONSES_TS_INDEX: &str = "CREATE INDEX responses_ts ON responses (ts_ms)";
/// The rollup's secondary indexes (migrations 1 and 12), also dropped for
/// a first load and built once at its end.
pub const ROLLUP_BUCKET_INDEX: &str = "CREATE INDEX rollup_bucket ON rollup (bucket)";
pub const ROLLUP_SESSION_INDEX: &str = "CREATE INDEX rollup_session ON rollup (session_id)";
pub const ROLLUP_BRANCH_INDEX: &str = "CREATE INDEX rollup_branch ON rollup (branch, bucket)";

/// Rollup bucket width: 15 minutes, so every zone's midnight (all offsets
/// are multiples of 15 minutes) falls on a bucket boundary.
pub const BUCKET_MS: i64 = 15 * 60 * 1000;

const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "
    CREATE TABLE files (
        path TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        dev INTEGER NOT NULL,
        ino INTEGER NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        offset INTEGER NOT NULL,
        head_len INTEGER NOT NULL,
        head_hash INTEGER NOT NULL,
        skipped_lines INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE TABLE places (
        id INTEGER PRIMARY KEY,
        cwd TEXT NOT NULL,
        project TEXT NOT NULL,
        UNIQUE (cwd, project)
    );
    CREATE TABLE sessions (
        session_id TEXT PRIMARY KEY,
        cwd TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE responses (
        id INTEGER PRIMARY KEY,
        message_id TEXT NOT NULL,
        request_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        place_id INTEGER NOT NULL,
        model TEXT NOT NULL,
        ts_ms INTEGER NOT NULL,
        sidechain INTEGER NOT NULL,
        counted INTEGER NOT NULL,
        fast INTEGER NOT NULL,
        us_geo INTEGER NOT NULL,
        advisor INTEGER NOT NULL,
        input INTEGER NOT NULL,
        output INTEGER NOT NULL,
        cache_write_5m INTEGER NOT NULL,
        cache_write_1h INTEGER NOT NULL,
        cache_read INTEGER NOT NULL,
        web_search INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX responses_key ON responses (message_id, request_id);
    CREATE INDEX responses_ts ON responses (ts_ms);
    CREATE TABLE rollup (
        bucket INTEGER NOT NULL,
        place_id INTEGER NOT NULL,
        session_id TEXT NOT NULL,
        model TEXT NOT NULL,
        fast INTEGER NOT NULL,
        us_geo INTEGER NOT NULL,
        class INTEGER NOT NULL,
        messages INTEGER NOT NULL,
        input INTEGER NOT NULL,
        output INTEGER NOT NULL,
        cache_write_5m INTEGER NOT NULL,
        cache_write_1h INTEGER NOT NULL,
        cache_read INTEGER NOT NULL,
        web_search INTEGER NOT NULL,
        PRIMARY KEY (place_id, bucket, session_id, model, fast, us_geo, class)
    ) WITHOUT ROWID;
    CREATE INDEX rollup_bucket ON rollup (bucket);
    CREATE INDEX rollup_session ON rollup (session_id);
    CREATE TABLE notices (
        channel TEXT NOT NULL,
        scope TEXT NOT NULL,
        cap TEXT NOT NULL,
        period_start TEXT NOT NULL,
        level TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        PRIMARY KEY (channel, scope, cap, period_start, level)
    ) WITHOUT ROWID;
    ",
    // 2: the alerts outbox (`alerts --command`).
    "
    CREATE TABLE alert_outbox (
        id INTEGER PRIMARY KEY,
        scope TEXT NOT NULL,
        cap TEXT NOT NULL,
        period_start TEXT NOT NULL,
        level TEXT NOT NULL,
        text TEXT NOT NULL,
        json TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        claimed_by TEXT,
        claimed_ms INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        UNIQUE (scope, cap, period_start, level)
    );
    ",
    // 3: a session's cwd is that of its earliest record (deterministic
    // whatever order files are read in).
    "
    ALTER TABLE sessions ADD COLUMN first_ts INTEGER NOT NULL DEFAULT 9223372036854775807;
    ",
    // 4: facts about the ledger itself; `history_read` once every
    // transcript found has been read through (a ledger that had read files
    // before this version had done so in one transaction).
    "
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    INSERT INTO meta (key, value) SELECT 'history_read', '1' WHERE EXISTS (SELECT 1 FROM files);
    ",
    // 5: files are one row per (device, inode): the same file read under
    // two paths (a symlinked Claude dir and the hook's transcript_path)
    // kept two rows and counted its skipped lines twice; the row that read
    // furthest stays. ctime catches a rewrite that keeps size and mtime
    // (-1: not known yet; such a row is not re-read for it, so upgrading
    // re-counts nothing). A place's real path, for arms reached through a
    // symlink (NULL: not resolved yet).
    "
    ALTER TABLE files ADD COLUMN ctime_ns INTEGER NOT NULL DEFAULT -1;
    DELETE FROM files WHERE EXISTS (
        SELECT 1 FROM files AS o
        WHERE o.dev = files.dev AND o.ino = files.ino
          AND (o.offset > files.offset OR (o.offset = files.offset AND o.path < files.path))
    );
    CREATE INDEX files_inode ON files (dev, ino);
    ALTER TABLE places ADD COLUMN real_cwd TEXT;
    ",
    // 6: sessions halted by the kill switch (`action_on_breach: stop`, a
    // burn-rate or session-cap breach on a hard_stop arm).
    "
    CREATE TABLE halts (
        session_id TEXT PRIMARY KEY,
        head TEXT NOT NULL,
        tail TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    ",
    // 7: the git branch of each response, and the latest per session.
    // Responses read before have none (''); every file is marked to be
    // read again from its start (size -1 never matches a stat, and a zero
    // head hash never matches a file's), and de-duplication makes the
    // re-read count nothing twice while it gives the responses still on
    // disk their branch. Responses whose transcripts are gone stay ''.
    "
    ALTER TABLE responses ADD COLUMN branch TEXT NOT NULL DEFAULT '';
    CREATE INDEX responses_branch ON responses (branch, ts_ms);
    CREATE TABLE session_branches (
        session_id TEXT PRIMARY KEY,
        branch TEXT NOT NULL,
        ts_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    UPDATE files SET size = -1, offset = 0, head_len = 0, head_hash = 0;
    ",
    // 8: Claude Code's own totals per session and count (`cost-state`), for
    // the requests it never writes as responses. Session files already
    // read are read again from the start, once, to find them (re-reading
    // adds nothing else: copies merge); subagent files never hold one.
    "
    CREATE TABLE cost_states (
        session_id TEXT NOT NULL,
        start_ms INTEGER NOT NULL,
        model TEXT NOT NULL,
        place_id INTEGER NOT NULL,
        end_ms INTEGER NOT NULL,
        input INTEGER NOT NULL,
        output INTEGER NOT NULL,
        cache_write_5m INTEGER NOT NULL,
        cache_write_1h INTEGER NOT NULL,
        cache_read INTEGER NOT NULL,
        web_search INTEGER NOT NULL,
        PRIMARY KEY (start_ms, session_id, model, end_ms)
    ) WITHOUT ROWID;
    CREATE INDEX cost_states_session ON cost_states (session_id);
    CREATE TABLE unwritten (
        start_ms INTEGER NOT NULL,
        end_ms INTEGER NOT NULL,
        session_id TEXT NOT NULL,
        model TEXT NOT NULL,
        place_id INTEGER NOT NULL,
        input INTEGER NOT NULL,
        output INTEGER NOT NULL,
        cache_write_5m INTEGER NOT NULL,
        cache_write_1h INTEGER NOT NULL,
        cache_read INTEGER NOT NULL,
        web_search INTEGER NOT NULL,
        branch TEXT NOT NULL,
        PRIMARY KEY (start_ms, end_ms, session_id, model)
    ) WITHOUT ROWID;
    CREATE INDEX unwritten_end ON unwritten (end_ms);
    CREATE INDEX unwritten_branch ON unwritten (branch, end_ms);
    CREATE TABLE session_links (
        a TEXT NOT NULL,
        b TEXT NOT NULL,
        PRIMARY KEY (a, b)
    ) WITHOUT ROWID;
    UPDATE files SET offset = 0, head_len = 0, head_hash = 0, skipped_lines = 0, size = -1
    WHERE path NOT LIKE '%/subagents/%' AND path NOT LIKE '%/agent-%';
    ",
    // 9: priced spend per budget scope and period over whole past UTC days
    // (see `spend_cache` above); `rollup_gen` counts rollup changes.
    "
    CREATE TABLE spend_cache (
        key INTEGER PRIMARY KEY,
        upto_ms INTEGER NOT NULL,
        picos TEXT NOT NULL
    );
    INSERT OR IGNORE INTO meta (key, value) VALUES ('rollup_gen', '0');
    ",
    // 10: a message's rows are found by a hash of its id (see `responses`
    // above; `octo_message_hash` is [`message_hash`], registered for the
    // migration): the index of (message_id, request_id) goes.
    "
    ALTER TABLE responses ADD COLUMN message_hash INTEGER NOT NULL DEFAULT 0;
    UPDATE responses SET message_hash = octo_message_hash(message_id);
    DROP INDEX responses_key;
    CREATE INDEX responses_message ON responses (message_hash);
    ",
    // 11: validated configs for the hook (see `config_cache` above).
    "
    CREATE TABLE config_cache (
        key BLOB PRIMARY KEY,
        config TEXT NOT NULL
    );
    ",
    // 12: the rollup is kept per branch too (see `rollup` above), computed
    // again from the counted responses (`octo_bucket` and
    // `octo_prompt_class` are the writer's own [`bucket_of`] and
    // `PromptClass::of`, registered for the migration); the responses'
    // branch index goes. Cached spend was priced from the old rows: it
    // goes too, and `rollup_gen` tells a reader that priced before it.
    "
    CREATE TABLE rollup_12 (
        bucket INTEGER NOT NULL,
        place_id INTEGER NOT NULL,
        session_id TEXT NOT NULL,
        model TEXT NOT NULL,
        fast INTEGER NOT NULL,
        us_geo INTEGER NOT NULL,
        class INTEGER NOT NULL,
        branch TEXT NOT NULL,
        messages INTEGER NOT NULL,
        input INTEGER NOT NULL,
        output INTEGER NOT NULL,
        cache_write_5m INTEGER NOT NULL,
        cache_write_1h INTEGER NOT NULL,
        cache_read INTEGER NOT NULL,
        web_search INTEGER NOT NULL,
        PRIMARY KEY (place_id, bucket, session_id, model, fast, us_geo, class, branch)
    ) WITHOUT ROWID;
    INSERT INTO rollup_12
    SELECT octo_bucket(ts_ms), place_id, session_id, model, fast, us_geo,
           octo_prompt_class(input, cache_write_5m, cache_write_1h, cache_read) AS class, branch,
           SUM(NOT advisor) AS messages, SUM(input) AS input, SUM(output) AS output,
           SUM(cache_write_5m) AS cw5, SUM(cache_write_1h) AS cw1, SUM(cache_read) AS cr,
           SUM(web_search) AS ws
    FROM responses WHERE counted
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
    HAVING messages != 0 OR input != 0 OR output != 0 OR cw5 != 0 OR cw1 != 0 OR cr != 0 OR ws != 0;
    DROP TABLE rollup;
    ALTER TABLE rollup_12 RENAME TO rollup;
    CREATE INDEX rollup_bucket ON rollup (bucket);
    CREATE INDEX rollup_session ON rollup (session_id);
    CREATE INDEX rollup_branch ON rollup (branch, bucket);
    DROP INDEX IF EXISTS responses_branch;
    DELETE FROM spend_cache;
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'rollup_gen';
    ",
];

/// The rollup bucket of a timestamp (milliseconds since the epoch).
pub fn bucket_of(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(BUCKET_MS)
}

/// `responses.message_hash` of a message id (schema 10): XXH3-64 of its
/// bytes, as SQLite's signed integer. Stored in ledgers: never change it.
pub fn message_hash(message_id: &str) -> i64 {
    hash_of_id(message_id.as_bytes())
}

/// The one definition of the hash, for Rust's strings and SQL's text.
fn hash_of_id(bytes: &[u8]) -> i64 {
    xxhash_rust::xxh3::xxh3_64(bytes) as i64
}

/// [`message_hash`] as the SQL function `octo_message_hash(text)`, for
/// migration 10.
fn register_message_hash(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "octo_message_hash",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            Ok(match ctx.get_raw(0) {
                rusqlite::types::ValueRef::Text(id) => hash_of_id(id),
                _ => 0,
            })
        },
    )
}

/// `octo_bucket(ts_ms)` and `octo_prompt_class(input, cache_write_5m,
/// cache_write_1h, cache_read)`: a response's rollup bucket and prompt
/// class exactly as the writer computes them, for migration 12.
fn register_rollup_key(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("octo_bucket", 1, flags, |ctx| {
        Ok(bucket_of(ctx.get::<i64>(0)?))
    })?;
    conn.create_scalar_function("octo_prompt_class", 4, flags, |ctx| {
        let tokens = crate::model::Usage {
            input: ctx.get::<i64>(0)?.max(0) as u64,
            cache_write_5m: ctx.get::<i64>(1)?.max(0) as u64,
            cache_write_1h: ctx.get::<i64>(2)?.max(0) as u64,
            cache_read: ctx.get::<i64>(3)?.max(0) as u64,
            ..Default::default()
        }
        .prompt_tokens();
        Ok(i64::from(crate::pricing::PromptClass::of(tokens).0))
    })
}

/// What a file opened as the ledger is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Identity {
    /// An empty database (a new file): becomes a ledger.
    New,
    /// An octo-budget ledger at this schema version; `marked` when it has
    /// our application id (older ledgers are known by their tables).
    Ours { version: i64, marked: bool },
    /// Another program's database, or one that is not empty yet has
    /// neither our application id nor our tables.
    Foreign,
}

fn identify(conn: &Connection) -> rusqlite::Result<Identity> {
    // One statement, so one snapshot: read in two, a ledger another process
    // creates in between looks like version 0 with tables, i.e. foreign
    // (seen with concurrent first calls on a new ledger).
    let (version, app, objects, own): (i64, i64, i64, i64) = conn.query_row(
        &format!(
            "SELECT user_version, application_id,
                    (SELECT count(*) FROM sqlite_master),
                    (SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('{}'))
             FROM pragma_user_version, pragma_application_id",
            OWN_TABLES.join("', '")
        ),
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    if app == APPLICATION_ID {
        return Ok(Identity::Ours {
            version,
            marked: true,
        });
    }
    if app != 0 {
        return Ok(Identity::Foreign);
    }
    Ok(match (version, objects, own) {
        (0, 0, _) => Identity::New,
        // Written before ledgers were marked.
        (version, _, n) if version >= 1 && n == OWN_TABLES.len() as i64 => Identity::Ours {
            version,
            marked: false,
        },
        _ => Identity::Foreign,
    })
}

/// The schema version of the ledger `conn` holds (0 for a new file) and
/// whether it is marked, or None for another program's database.
fn version_of(conn: &Connection) -> rusqlite::Result<Option<(i64, bool)>> {
    Ok(match identify(conn)? {
        Identity::New => Some((0, false)),
        Identity::Ours { version, marked } => Some((version, marked)),
        Identity::Foreign => None,
    })
}

/// The page size of a ledger created from now on. SQLite's default of 4
/// KiB costs a first load (every write and index build of which walks and
/// writes pages) about 5% more wall time than 8 KiB on the benchmark
/// tree; a hook call writes its few pages to the WAL either way. A
/// ledger keeps the page size it was created with.
const NEW_PAGE_SIZE: &str = "PRAGMA page_size = 8192";

/// Brings the ledger to [`VERSION`], or refuses a newer one.
pub fn migrate(ledger: &mut Ledger) -> Result<()> {
    // Before anything else (WAL mode included) touches the file.
    let Some((version, marked)) = version_of(&ledger.conn).map_err(|e| ledger.err(e))? else {
        return Err(LedgerError::Foreign {
            path: ledger.path.clone(),
        });
    };
    if version > VERSION {
        return Err(LedgerError::TooNew {
            path: ledger.path.clone(),
            found: version,
            supported: VERSION,
        });
    }
    if version == 0 {
        // A new file (a no-op on one another process has just created).
        ledger
            .conn
            .execute_batch(NEW_PAGE_SIZE)
            .map_err(|e| ledger.err(e))?;
    }
    use_wal(ledger)?;
    ledger
        .conn
        // A short WAL: a process that opens the ledger first reads every
        // valid frame of it (the hook does that on every call), so ingest
        // truncates it past about a megabyte (`Ledger::checkpoint_if_large`);
        // the automatic checkpoint is only a backstop above that.
        .execute_batch("PRAGMA synchronous = NORMAL; PRAGMA cache_size = -32768; PRAGMA wal_autocheckpoint = 1024")
        .map_err(|e| ledger.err(e))?;
    if version == VERSION && marked {
        return Ok(());
    }
    let path = ledger.path.clone();
    let busy = ledger.busy;
    let tx = ledger
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| super::classify(&path, busy, e))?;
    // Another process may have migrated while we waited for the lock.
    let (current, marked) = version_of(&tx)
        .map_err(|e| super::classify(&path, busy, e))?
        .ok_or_else(|| LedgerError::Foreign { path: path.clone() })?;
    if current > VERSION {
        return Err(LedgerError::TooNew {
            path,
            found: current,
            supported: VERSION,
        });
    }
    if current < 10 {
        register_message_hash(&tx).map_err(|e| super::classify(&path, busy, e))?;
    }
    if current < 12 {
        register_rollup_key(&tx).map_err(|e| super::classify(&path, busy, e))?;
    }
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let target = i as i64 + 1;
        if current < target {
            tx.execute_batch(sql)
                .map_err(|e| super::classify(&path, busy, e))?;
            tx.execute_batch(&format!("PRAGMA user_version = {target}"))
                .map_err(|e| super::classify(&path, busy, e))?;
        }
    }
    if !marked {
        tx.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID}"))
            .map_err(|e| super::classify(&path, busy, e))?;
    }
    tx.commit().map_err(|e| super::classify(&path, busy, e))?;
    // A migration that rewrote every response (10) leaves a WAL as large
    // as the table: folded into the database now, not read by every later
    // process that opens the ledger.
    ledger.checkpoint_if_large();
    Ok(())
}

/// Puts the ledger in WAL mode (once per file; it persists). Switching
/// needs the file to itself, and SQLite answers "busy" at once (without
/// waiting) when another process has it open, for example several hooks
/// creating a new ledger together: retry until the busy deadline.
pub(super) fn use_wal(ledger: &Ledger) -> Result<()> {
    let deadline = std::time::Instant::now() + ledger.busy;
    loop {
        let attempt = ledger
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))
            .and_then(|mode| {
                if mode.eq_ignore_ascii_case("wal") {
                    Ok(true)
                } else {
                    ledger
                        .conn
                        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
                        .map(|now| now.eq_ignore_ascii_case("wal"))
                }
            });
        match attempt {
            // Not switched (SQLite keeps the old mode when it cannot): try
            // again while there is time; a rollback journal still works.
            Ok(false) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Ok(_) => return Ok(()),
            Err(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => return Err(ledger.err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_size(l: &Ledger) -> i64 {
        l.conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap()
    }

    /// A new ledger is made with [`NEW_PAGE_SIZE`]; a file SQLite had
    /// already begun with another page size (a ledger made before, here
    /// one begun by hand) keeps it and works as any other.
    #[test]
    fn new_ledgers_get_the_new_page_size_and_others_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let wait = std::time::Duration::from_secs(5);
        let new = Ledger::open(&dir.path().join("new.sqlite"), wait).unwrap();
        assert_eq!(page_size(&new), 8192);
        let old_path = dir.path().join("old.sqlite");
        let conn = Connection::open(&old_path).unwrap();
        conn.execute_batch("PRAGMA page_size = 4096; PRAGMA journal_mode = WAL")
            .unwrap();
        drop(conn);
        let old = Ledger::open(&old_path, wait).unwrap();
        assert_eq!(page_size(&old), 4096);
        assert!(old.is_current().unwrap());
    }
}
