//! The one writer of an ingest: it applies each file's result (and a team
//! server's batches, `remote`) to the ledger in transactions that carry
//! the responses, their rollup and the file's offset together.
//!
//! A response is merged into the rows already held for its message
//! (the largest value of each field; a sidechain copy of a message seen
//! outside a sidechain is kept but not counted), and every change to a
//! counted row moves its rollup bucket by the same amount. A first load
//! into an empty ledger runs as one transaction with the `responses` and
//! rollup indexes dropped, finds its own rows through [`FreshLoad`], and
//! builds the indexes once at its end.

use std::path::Path;
use std::sync::Arc;

use rusqlite::{params, OptionalExtension};

use super::bound::{Bound, Value};
use super::remote::RemoteBatch;
use super::{FastMap, FileResult, IngestStats, Known, FILE_BY_PATH};
use crate::ledger::schema::{bucket_of, BUCKET_MS};
use crate::ledger::{Ledger, LedgerError, Names, Result};
use crate::pricing::PromptClass;
use crate::transcript::Usage;

/// Rows per transaction on a large ingest.
const ROWS_PER_TX: usize = 25_000;

/// One run's totals of a `cost-state` (a cumulative count has one row per
/// run); the same record read again, here or from a team's server, merges
/// by maximum.
const UPSERT_COST_STATE: &str =
    "INSERT INTO cost_states (session_id, start_ms, model, place_id, end_ms,
        input, output, cache_write_5m, cache_write_1h, cache_read, web_search)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
     ON CONFLICT (start_ms, session_id, model, end_ms) DO UPDATE SET
        input = max(input, excluded.input), output = max(output, excluded.output),
        cache_write_5m = max(cache_write_5m, excluded.cache_write_5m),
        cache_write_1h = max(cache_write_1h, excluded.cache_write_1h),
        cache_read = max(cache_read, excluded.cache_read),
        web_search = max(web_search, excluded.web_search)";

/// A session's first record: its cwd is that of its earliest record,
/// whichever file (and run), or team host, shows it first.
const UPSERT_SESSION: &str = "INSERT INTO sessions (session_id, cwd, first_ts) VALUES (?1, ?2, ?3)
     ON CONFLICT (session_id) DO UPDATE SET cwd = excluded.cwd, first_ts = excluded.first_ts
     WHERE (excluded.first_ts, excluded.cwd) < (sessions.first_ts, sessions.cwd)";

/// A row of `responses` ([`Writer::insert`]'s values, in this order).
const INSERT_RESPONSE: &str = "INSERT INTO responses (message_id, request_id, session_id,
        place_id, model, ts_ms, sidechain, counted, fast, us_geo, advisor, input, output,
        cache_write_5m, cache_write_1h, cache_read, web_search, branch, message_hash)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)";

/// Adds a delta to its rollup bucket's row, creating the row if needed.
const UPSERT_ROLLUP: &str =
    "INSERT INTO rollup (bucket, place_id, session_id, model, fast, us_geo, class, messages,
        input, output, cache_write_5m, cache_write_1h, cache_read, web_search, branch)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
     ON CONFLICT (place_id, bucket, session_id, model, fast, us_geo, class, branch) DO UPDATE SET
        messages = messages + excluded.messages, input = input + excluded.input,
        output = output + excluded.output, cache_write_5m = cache_write_5m + excluded.cache_write_5m,
        cache_write_1h = cache_write_1h + excluded.cache_write_1h,
        cache_read = cache_read + excluded.cache_read, web_search = web_search + excluded.web_search";

/// A row of `responses` (a response, or one advisor iteration of it).
#[derive(Debug, Clone)]
struct Row {
    /// `responses.id` (0 until inserted).
    id: i64,
    message_id: String,
    request_id: String,
    /// Shared with the other rows of its file (see [`Recent`]).
    session_id: Arc<str>,
    place_id: i64,
    model: Arc<str>,
    ts_ms: i64,
    /// The git branch ('' for none).
    branch: Arc<str>,
    sidechain: bool,
    counted: bool,
    fast: bool,
    us_geo: bool,
    advisor: bool,
    usage: Usage,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RollupKey {
    bucket: i64,
    place_id: i64,
    /// Interned (see [`Names`]): a hot loop hashes integers, not strings.
    session_id: u32,
    model: u32,
    fast: bool,
    us_geo: bool,
    class: u8,
    branch: u32,
}

#[derive(Debug, Default, Clone, Copy)]
struct Delta {
    messages: i64,
    t: [i64; 6],
}

/// Applies file results in transactions.
pub(super) struct Writer<'a> {
    ledger: &'a Ledger,
    tx_open: bool,
    pending: usize,
    deltas: FastMap<RollupKey, Delta>,
    names: Names,
    /// Place ids by transcript folder, then cwd.
    places: FastMap<String, FastMap<String, i64>>,
    /// Set during a first load: the ledger held no responses when this
    /// run's (single) transaction began, so every row is this run's own.
    fresh: Option<FreshLoad<'a>>,
    /// A session's cwd changed in this transaction (attribution of places
    /// without a cwd may move): every cached spend is dropped at commit.
    sessions_changed: bool,
    /// Sessions whose counted responses or `cost-state`s changed in this
    /// transaction: their unwritten parts are computed again before it
    /// commits.
    dirty: Dirty,
    /// The last rows' names and their ids.
    recent: Recent,
    /// The `responses` insert, prepared once per run (not looked up in the
    /// statement cache by its text for every row).
    insert_st: Option<rusqlite::CachedStatement<'a>>,
}

/// The sessions a transaction changed.
#[derive(Default)]
struct Dirty {
    sessions: std::collections::HashSet<String, foldhash::fast::RandomState>,
    /// The session marked last, known by its pointer (a file's rows share
    /// it): marked again without hashing it.
    last: Option<Arc<str>>,
}

impl Dirty {
    fn mark(&mut self, session: &Arc<str>) {
        if self.last.as_ref().is_some_and(|l| Arc::ptr_eq(l, session)) {
            return;
        }
        self.mark_str(session);
        self.last = Some(Arc::clone(session));
    }

    fn mark_str(&mut self, session: &str) {
        if !self.sessions.contains(session) {
            self.sessions.insert(session.to_owned());
        }
    }

    fn take(&mut self) -> std::collections::HashSet<String, foldhash::fast::RandomState> {
        self.last = None;
        std::mem::take(&mut self.sessions)
    }
}

/// The ids ([`Names`]) of the last row's session, model and branch, by
/// pointer: the rows of one file share those strings, so a repeated one
/// is not hashed again. Each entry holds its string, so the pointer it
/// compares cannot have been freed and reused; ids never change.
#[derive(Default)]
struct Recent {
    session: Option<(Arc<str>, u32)>,
    model: Option<(Arc<str>, u32)>,
    branch: Option<(Arc<str>, u32)>,
}

impl Recent {
    fn id(slot: &mut Option<(Arc<str>, u32)>, names: &mut Names, name: &Arc<str>) -> u32 {
        match slot {
            Some((last, id)) if Arc::ptr_eq(last, name) => *id,
            _ => {
                let id = names.id(name);
                *slot = Some((Arc::clone(name), id));
                id
            }
        }
    }
}

/// A first load into an empty ledger. Its rows are found through this map
/// (a hash of the message id -> row ids) instead of the ledger's indexes,
/// which are dropped for the load and rebuilt once, sorted, before it
/// commits: far cheaper than growing them row by row in random order.
#[derive(Default)]
struct FreshLoad<'a> {
    /// The first row of each hash (one allocation-free entry per message).
    first: FastMap<i64, i64>,
    /// The other rows of a hash (a message read with another request id,
    /// or a collision).
    more: FastMap<i64, Vec<i64>>,
    /// [`INSERT_RESPONSE`] for the load's many rows.
    insert: Option<Bound<'a>>,
}

impl FreshLoad<'_> {
    /// The rows whose message id has this hash.
    fn ids(&self, hash: i64) -> Vec<i64> {
        match self.first.get(&hash) {
            None => Vec::new(),
            Some(&id) => std::iter::once(id)
                .chain(self.more.get(&hash).into_iter().flatten().copied())
                .collect(),
        }
    }

    fn add(&mut self, hash: i64, id: i64) {
        match self.first.entry(hash) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(id);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.more.entry(hash).or_default().push(id);
            }
        }
    }
}

impl<'a> Writer<'a> {
    pub(super) fn new(ledger: &'a mut Ledger) -> Writer<'a> {
        Writer {
            ledger,
            tx_open: false,
            pending: 0,
            deltas: FastMap::default(),
            names: Names::default(),
            places: FastMap::default(),
            fresh: None,
            sessions_changed: false,
            dirty: Dirty::default(),
            recent: Recent::default(),
            insert_st: None,
        }
    }

    fn begin(&mut self, expect_many: bool) -> Result<()> {
        if !self.tx_open {
            let conn = &self.ledger.conn;
            conn.execute_batch("BEGIN IMMEDIATE")
                .map_err(|e| self.ledger.err(e))?;
            self.tx_open = true;
            if expect_many {
                let empty: bool = conn
                    .query_row("SELECT NOT EXISTS (SELECT 1 FROM responses)", [], |r| {
                        r.get(0)
                    })
                    .map_err(|e| self.ledger.err(e))?;
                if empty {
                    conn.execute_batch(
                        "DROP INDEX responses_message; DROP INDEX responses_ts;
                         DROP INDEX rollup_bucket; DROP INDEX rollup_session; DROP INDEX rollup_branch",
                    )
                        .map_err(|e| self.ledger.err(e))?;
                    self.fresh = Some(FreshLoad::default());
                }
            }
        }
        Ok(())
    }

    pub(super) fn apply(
        &mut self,
        mut r: FileResult,
        stats: &mut IngestStats,
        expect_many: bool,
    ) -> Result<()> {
        self.begin(expect_many)?;
        let res = self.apply_in_tx(&mut r, stats);
        if res.is_err() {
            self.rollback();
            return res;
        }
        // A fresh load is one transaction: no other process can write
        // between our lookups-we-skip and our inserts.
        if self.pending >= ROWS_PER_TX && self.fresh.is_none() {
            self.commit()?;
        }
        Ok(())
    }

    fn apply_in_tx(&mut self, r: &mut FileResult, stats: &mut IngestStats) -> Result<()> {
        // Apply only if nobody advanced this file since we planned; otherwise their write already holds
        // these lines (or more) and our skipped-line count would be doubled.
        let conn = &self.ledger.conn;
        let now_known: Option<(i64, i64, i64, i64)> = conn
            .prepare_cached(FILE_BY_PATH)
            .and_then(|mut s| s.query_row([&r.key], Known::of_row).optional())
            .map_err(|e| self.ledger.err(e))?
            .map(|(_, k)| (k.meta.dev, k.meta.ino, k.offset, k.head_hash));
        let planned = r
            .known
            .map(|k| (k.meta.dev, k.meta.ino, k.offset, k.head_hash));
        if now_known != planned {
            return Ok(());
        }
        stats.files_read += 1;
        stats.bytes_read += r.bytes;
        stats.skipped_lines += r.skipped;
        let responses = std::mem::take(&mut r.responses);
        let count = responses.len();
        stats.responses += count;
        // Branches the ledger knows for sessions whose responses named none
        // before this file's first that did.
        let mut known_branches: FastMap<Arc<str>, Arc<str>> = FastMap::default();
        let none: Arc<str> = Arc::from("");
        // The place of the last response's cwd (a file's share theirs).
        let mut last_place: Option<(Arc<str>, i64)> = None;
        for resp in responses {
            let cwd = resp.cwd.unwrap_or_else(|| Arc::clone(&none));
            let place_id = match &last_place {
                Some((last, id)) if Arc::ptr_eq(last, &cwd) => *id,
                _ => {
                    let id = self.place(&cwd, &r.project)?;
                    last_place = Some((cwd, id));
                    id
                }
            };
            let branch = match (resp.branch, &resp.session_id) {
                (Some(b), _) => b,
                (None, Some(s)) if !s.is_empty() => match known_branches.get(s) {
                    Some(b) => Arc::clone(b),
                    None => {
                        let b: Arc<str> = Arc::from(self.session_branch(s)?);
                        known_branches.insert(Arc::clone(s), Arc::clone(&b));
                        b
                    }
                },
                (None, _) => Arc::clone(&none),
            };
            let base = Row {
                id: 0,
                message_id: resp.message_id,
                request_id: resp.request_id,
                session_id: resp.session_id.unwrap_or_else(|| Arc::clone(&none)),
                place_id,
                model: resp.model,
                ts_ms: resp.ts_ms,
                branch,
                sidechain: resp.sidechain,
                counted: true,
                fast: resp.fast,
                us_geo: resp.us_geo,
                advisor: false,
                usage: resp.usage,
            };
            for (i, a) in resp.advisors.into_iter().enumerate() {
                let row = Row {
                    message_id: format!("{}#advisor{i}", base.message_id),
                    model: Arc::from(a.model),
                    advisor: true,
                    // Fast mode is the executor's speed; the advisor's
                    // own pass is billed at its model's normal rates.
                    fast: false,
                    usage: a.usage,
                    ..base.clone()
                };
                self.apply_row(row)?;
            }
            self.apply_row(base)?;
        }
        let conn = &self.ledger.conn;
        let mut sessions_changed = 0;
        {
            let mut st = conn
                .prepare_cached(UPSERT_SESSION)
                .map_err(|e| self.ledger.err(e))?;
            for sc in &r.session_cwds {
                sessions_changed += st
                    .execute(params![sc.session_id, sc.cwd, sc.ts_ms])
                    .map_err(|e| self.ledger.err(e))?;
            }
            // A session's branch is that of its latest response naming one.
            let mut st = conn
                .prepare_cached(
                    "INSERT INTO session_branches (session_id, branch, ts_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (session_id) DO UPDATE SET branch = excluded.branch, ts_ms = excluded.ts_ms
                     WHERE excluded.ts_ms >= session_branches.ts_ms",
                )
                .map_err(|e| self.ledger.err(e))?;
            for (session, (branch, ts_ms)) in &r.session_branches {
                st.execute(params![session, branch, ts_ms])
                    .map_err(|e| self.ledger.err(e))?;
            }
        }
        self.sessions_changed |= sessions_changed > 0;
        for (c, end_ms) in std::mem::take(&mut r.cost_states) {
            self.dirty.mark_str(&c.session_id);
            let cwd = r
                .session_cwds
                .iter()
                .find(|sc| sc.session_id == c.session_id)
                .map_or("", |sc| sc.cwd.as_str())
                .to_owned();
            let place_id = self.place(&cwd, &r.project)?;
            for (model, u) in &c.models {
                self.put_cost_state(&c.session_id, c.start_ms, model, place_id, end_ms, u)?;
            }
            self.pending += 1;
        }
        let conn = &self.ledger.conn;
        let skipped = if r.reset {
            0
        } else {
            r.known.map_or(0, |k| k.skipped)
        } + r.skipped as i64;
        // The row under this path was read above, in this transaction: an
        // update when there is one, else an insert (each statement simpler
        // to prepare than an upsert, which the hook does on every call).
        // The same file as before (an appended one: every hook call's)
        // keeps its (dev, ino), and so its `files_inode` entry: an update
        // that does not name them leaves that index's page unwritten.
        conn.prepare_cached(match now_known {
            Some((dev, ino, _, _)) if (dev, ino) == (r.meta.dev, r.meta.ino) => {
                "UPDATE files SET project = ?2, size = ?5, mtime_ns = ?6, offset = ?7,
                   head_len = ?8, head_hash = ?9, skipped_lines = ?10, ctime_ns = ?11
                 WHERE path = ?1"
            }
            Some(_) => {
                "UPDATE files SET project = ?2, dev = ?3, ino = ?4, size = ?5, mtime_ns = ?6, offset = ?7,
                   head_len = ?8, head_hash = ?9, skipped_lines = ?10, ctime_ns = ?11
                 WHERE path = ?1"
            }
            None => {
                "INSERT INTO files (path, project, dev, ino, size, mtime_ns, offset, head_len, head_hash, skipped_lines, ctime_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            }
        })
        .and_then(|mut s| {
            s.execute(params![
                r.key,
                r.project,
                r.meta.dev,
                r.meta.ino,
                r.meta.size,
                r.meta.mtime_ns,
                r.end,
                r.head_len,
                r.head_hash,
                skipped,
                r.meta.ctime_ns
            ])
        })
        .map_err(|e| self.ledger.err(e))?;
        self.pending += count + 1;
        Ok(())
    }

    /// The branch of a session's latest response that named one, as the
    /// ledger knows it ('' when none did).
    fn session_branch(&self, session: &str) -> Result<String> {
        self.ledger
            .conn
            .prepare_cached("SELECT branch FROM session_branches WHERE session_id = ?1")
            .and_then(|mut s| s.query_row([session], |r| r.get(0)).optional())
            .map(Option::unwrap_or_default)
            .map_err(|e| self.ledger.err(e))
    }

    fn place(&mut self, cwd: &str, project: &str) -> Result<i64> {
        if let Some(id) = self.places.get(project).and_then(|m| m.get(cwd)) {
            return Ok(*id);
        }
        let id = match self.known_place(cwd, project)? {
            Some(id) => id,
            None => self.add_place(cwd, project)?,
        };
        self.places
            .entry(project.to_owned())
            .or_default()
            .insert(cwd.to_owned(), id);
        Ok(id)
    }

    /// A place the ledger knows with its real path already (every hook
    /// call's): nothing to resolve or write.
    fn known_place(&self, cwd: &str, project: &str) -> Result<Option<i64>> {
        self.ledger
            .conn
            .prepare_cached(
                "SELECT id FROM places WHERE cwd = ?1 AND project = ?2 AND real_cwd IS NOT NULL",
            )
            .and_then(|mut s| s.query_row(params![cwd, project], |r| r.get(0)).optional())
            .map_err(|e| self.ledger.err(e))
    }

    /// Records a place (or the real path of one read before real paths
    /// were kept): its cwd's real path is resolved once per place and run
    /// ('' when it is its own real path or does not exist here).
    fn add_place(&self, cwd: &str, project: &str) -> Result<i64> {
        let conn = &self.ledger.conn;
        let real = crate::ledger::query::real_path(cwd).unwrap_or_default();
        conn.prepare_cached(
            "INSERT INTO places (cwd, project, real_cwd) VALUES (?1, ?2, ?3)
             ON CONFLICT (cwd, project) DO UPDATE SET real_cwd = excluded.real_cwd
             WHERE places.real_cwd IS NULL",
        )
        .and_then(|mut s| s.execute(params![cwd, project, real]))
        .map_err(|e| self.ledger.err(e))?;
        conn.prepare_cached("SELECT id FROM places WHERE cwd = ?1 AND project = ?2")
            .and_then(|mut s| s.query_row(params![cwd, project], |r| r.get(0)))
            .map_err(|e| self.ledger.err(e))
    }

    /// Merges one row into `responses`, keeping the rollup in step:
    /// duplicates keep the largest value of each field; a sidechain copy of
    /// a message already seen outside a sidechain (with another request id)
    /// is kept but not counted.
    fn apply_row(&mut self, row: Row) -> Result<()> {
        let message_hash = crate::ledger::schema::message_hash(&row.message_id);
        let existing = match &self.fresh {
            Some(load) => match load.ids(message_hash) {
                ids if ids.is_empty() => Vec::new(),
                ids => self.rows_by_id(&ids, &row.message_id)?,
            },
            None => self.rows_of(message_hash, &row.message_id)?,
        };
        let same = existing.iter().find(|e| e.request_id == row.request_id);
        let other_main = existing
            .iter()
            .any(|e| e.request_id != row.request_id && !e.sidechain);
        if let Some(old) = same.filter(|o| o.session_id != row.session_id) {
            // One response in two sessions' files (a fork's copies of its
            // parent's): the row keeps one session id; the link lets the
            // other session's cost-state find it (see `refresh_unwritten`).
            self.link_sessions(&old.session_id, &row.session_id)?;
        }
        let written = match same {
            Some(old) => {
                let usage = old.usage.max(&row.usage);
                let sidechain = old.sidechain && row.sidechain;
                // A response keeps the first branch it was read with; one
                // read before branches were kept (schema 7) learns it now.
                let branch = if old.branch.is_empty() {
                    row.branch
                } else {
                    old.branch.clone()
                };
                if usage == old.usage && sidechain == old.sidechain && branch == old.branch {
                    return Ok(());
                }
                let new = Row {
                    usage,
                    sidechain,
                    branch,
                    counted: !(sidechain && other_main),
                    ..old.clone()
                };
                if old.counted {
                    self.delta(old, -1);
                }
                self.update(&new)?;
                new
            }
            None => {
                let new = Row {
                    counted: !(row.sidechain && other_main),
                    ..row
                };
                self.insert(&new, message_hash)?;
                new
            }
        };
        if written.counted {
            self.delta(&written, 1);
        }
        if !written.sidechain {
            for e in existing
                .iter()
                .filter(|e| e.request_id != written.request_id && e.sidechain && e.counted)
            {
                let demoted = Row {
                    counted: false,
                    ..e.clone()
                };
                self.update(&demoted)?;
                self.delta(e, -1);
            }
        }
        Ok(())
    }

    /// One model's totals of one run's `cost-state` ([`UPSERT_COST_STATE`]).
    fn put_cost_state(
        &self,
        session_id: &str,
        start_ms: i64,
        model: &str,
        place_id: i64,
        end_ms: i64,
        u: &Usage,
    ) -> Result<()> {
        self.ledger
            .conn
            .prepare_cached(UPSERT_COST_STATE)
            .and_then(|mut st| {
                st.execute(params![
                    session_id,
                    start_ms,
                    model,
                    place_id,
                    end_ms,
                    u.input as i64,
                    u.output as i64,
                    u.cache_write_5m as i64,
                    u.cache_write_1h as i64,
                    u.cache_read as i64,
                    u.web_search as i64
                ])
            })
            .map(|_| ())
            .map_err(|e| self.ledger.err(e))
    }

    /// Records that `a` and `b` share a response, both ways, and marks both
    /// sessions for a new computation of their unwritten parts.
    fn link_sessions(&mut self, a: &str, b: &str) -> Result<()> {
        if a.is_empty() || b.is_empty() {
            return Ok(());
        }
        let mut st = self
            .ledger
            .conn
            .prepare_cached("INSERT OR IGNORE INTO session_links (a, b) VALUES (?1, ?2), (?2, ?1)")
            .map_err(|e| self.ledger.err(e))?;
        if st.execute([a, b]).map_err(|e| self.ledger.err(e))? > 0 {
            self.dirty.mark_str(a);
            self.dirty.mark_str(b);
        }
        Ok(())
    }

    /// Every row of a message (through the `responses_message` index).
    /// Most messages a hook call reads are new: a probe of the index, far
    /// cheaper to prepare than the select of whole rows, answers those.
    fn rows_of(&self, message_hash: i64, message_id: &str) -> Result<Vec<Row>> {
        let any: bool = self
            .ledger
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM responses WHERE message_hash = ?1)")
            .and_then(|mut s| s.query_row([message_hash], |r| r.get(0)))
            .map_err(|e| self.ledger.err(e))?;
        if !any {
            return Ok(Vec::new());
        }
        Ok(self
            .select_rows(
                "WHERE message_hash = ?1",
                rusqlite::types::Value::from(message_hash),
            )?
            .into_iter()
            .filter(|r| r.message_id == message_id)
            .collect())
    }

    /// The rows among `ids` that belong to `message_id` (a first load's own
    /// rows; another message may share the hash).
    fn rows_by_id(&self, ids: &[i64], message_id: &str) -> Result<Vec<Row>> {
        let mut out = Vec::new();
        for id in ids {
            out.extend(
                self.select_rows("WHERE id = ?1", rusqlite::types::Value::from(*id))?
                    .into_iter()
                    .filter(|r| r.message_id == message_id),
            );
        }
        Ok(out)
    }

    fn select_rows(&self, filter: &str, arg: rusqlite::types::Value) -> Result<Vec<Row>> {
        let mut st = self
            .ledger
            .conn
            .prepare_cached(&format!(
                "SELECT id, message_id, request_id, session_id, place_id, model, ts_ms, sidechain, counted, fast,
                        us_geo, advisor, input, output, cache_write_5m, cache_write_1h, cache_read, web_search, branch
                 FROM responses {filter}"
            ))
            .map_err(|e| self.ledger.err(e))?;
        let rows = st
            .query_map([arg], |r| {
                Ok(Row {
                    id: r.get(0)?,
                    message_id: r.get(1)?,
                    request_id: r.get(2)?,
                    session_id: r.get(3)?,
                    place_id: r.get(4)?,
                    model: r.get(5)?,
                    ts_ms: r.get(6)?,
                    sidechain: r.get(7)?,
                    counted: r.get(8)?,
                    fast: r.get(9)?,
                    us_geo: r.get(10)?,
                    advisor: r.get(11)?,
                    usage: crate::ledger::usage_at(r, 12)?,
                    branch: r.get(18)?,
                })
            })
            .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| self.ledger.err(e))?;
        Ok(rows)
    }

    /// Inserts `r`, whose message id hashes to `message_hash`.
    fn insert(&mut self, r: &Row, message_hash: i64) -> Result<()> {
        let u = &r.usage;
        let flag = |b: bool| Value::Int(i64::from(b));
        let values = [
            Value::Text(&r.message_id),
            Value::Text(&r.request_id),
            Value::Text(&r.session_id),
            Value::Int(r.place_id),
            Value::Text(&r.model),
            Value::Int(r.ts_ms),
            flag(r.sidechain),
            flag(r.counted),
            flag(r.fast),
            flag(r.us_geo),
            flag(r.advisor),
            Value::Int(u.input as i64),
            Value::Int(u.output as i64),
            Value::Int(u.cache_write_5m as i64),
            Value::Int(u.cache_write_1h as i64),
            Value::Int(u.cache_read as i64),
            Value::Int(u.web_search as i64),
            Value::Text(&r.branch),
            Value::Int(message_hash),
        ];
        let conn = &self.ledger.conn;
        let done = match &mut self.fresh {
            // A first load's many rows: bound without copying their text.
            Some(load) => {
                let st = match &mut load.insert {
                    Some(st) => st,
                    None => load.insert.insert(
                        Bound::prepare(conn, INSERT_RESPONSE).map_err(|e| self.ledger.err(e))?,
                    ),
                };
                st.execute(&values).map(|()| {
                    load.add(message_hash, conn.last_insert_rowid());
                })
            }
            None => {
                let st = match &mut self.insert_st {
                    Some(st) => st,
                    None => self.insert_st.insert(
                        conn.prepare_cached(INSERT_RESPONSE)
                            .map_err(|e| self.ledger.err(e))?,
                    ),
                };
                st.execute(rusqlite::params_from_iter(values)).map(|_| ())
            }
        };
        done.map_err(|e| self.ledger.err(e))
    }

    fn update(&mut self, r: &Row) -> Result<()> {
        let u = &r.usage;
        self.ledger
            .conn
            .prepare_cached(
                "UPDATE responses SET sidechain = ?2, counted = ?3, input = ?4, output = ?5, cache_write_5m = ?6,
                    cache_write_1h = ?7, cache_read = ?8, web_search = ?9, branch = ?10
                 WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![
                    r.id,
                    r.sidechain,
                    r.counted,
                    u.input as i64,
                    u.output as i64,
                    u.cache_write_5m as i64,
                    u.cache_write_1h as i64,
                    u.cache_read as i64,
                    u.web_search as i64,
                    r.branch
                ])
            })
            .map_err(|e| self.ledger.err(e))?;
        Ok(())
    }

    fn delta(&mut self, r: &Row, sign: i64) {
        self.dirty.mark(&r.session_id);
        let (recent, names) = (&mut self.recent, &mut self.names);
        let key = RollupKey {
            bucket: bucket_of(r.ts_ms),
            place_id: r.place_id,
            session_id: Recent::id(&mut recent.session, names, &r.session_id),
            model: Recent::id(&mut recent.model, names, &r.model),
            fast: r.fast,
            us_geo: r.us_geo,
            class: PromptClass::of(r.usage.prompt_tokens()).0,
            branch: Recent::id(&mut recent.branch, names, &r.branch),
        };
        let d = self.deltas.entry(key).or_default();
        if !r.advisor {
            d.messages += sign;
        }
        let u = &r.usage;
        for (slot, v) in d.t.iter_mut().zip([
            u.input,
            u.output,
            u.cache_write_5m,
            u.cache_write_1h,
            u.cache_read,
            u.web_search,
        ]) {
            *slot += sign * v as i64;
        }
    }

    fn flush_rollup(&mut self) -> Result<()> {
        // A bucket's row is added to with a plain update where it exists
        // (a hook call's usually does: far cheaper to prepare than the
        // upsert), else upserted (a first load's rows, all new).
        let conn = &self.ledger.conn;
        let err = |e| classify_err(&self.ledger.path, self.ledger.busy, e);
        let mut add = match self.fresh {
            Some(_) => None,
            None => Some(
                conn.prepare_cached(
                    "UPDATE rollup SET messages = messages + ?8, input = input + ?9, output = output + ?10,
                        cache_write_5m = cache_write_5m + ?11, cache_write_1h = cache_write_1h + ?12,
                        cache_read = cache_read + ?13, web_search = web_search + ?14
                     WHERE place_id = ?2 AND bucket = ?1 AND session_id = ?3 AND model = ?4
                       AND fast = ?5 AND us_geo = ?6 AND class = ?7 AND branch = ?15",
                )
                .map_err(err)?,
            ),
        };
        let mut upsert = None;
        let mut first_changed: Option<i64> = None;
        // In the rollup's key order: a large flush (a first load) then
        // appends to its B-tree instead of splitting pages all over it.
        let mut deltas: Vec<(RollupKey, Delta)> = self
            .deltas
            .drain()
            .filter(|(_, d)| d.messages != 0 || d.t.iter().any(|v| *v != 0))
            .collect();
        let names = &self.names;
        deltas.sort_unstable_by(|(a, _), (b, _)| {
            (
                a.place_id,
                a.bucket,
                names.name(a.session_id),
                names.name(a.model),
            )
                .cmp(&(
                    b.place_id,
                    b.bucket,
                    names.name(b.session_id),
                    names.name(b.model),
                ))
                .then((a.fast, a.us_geo, a.class).cmp(&(b.fast, b.us_geo, b.class)))
                .then_with(|| names.name(a.branch).cmp(names.name(b.branch)))
        });
        for (k, d) in deltas {
            first_changed = Some(first_changed.map_or(k.bucket, |b| b.min(k.bucket)));
            let row = params![
                k.bucket,
                k.place_id,
                names.name(k.session_id),
                names.name(k.model),
                k.fast,
                k.us_geo,
                k.class,
                d.messages,
                d.t[0],
                d.t[1],
                d.t[2],
                d.t[3],
                d.t[4],
                d.t[5],
                names.name(k.branch)
            ];
            let added = match &mut add {
                Some(st) => st.execute(row).map_err(err)? > 0,
                None => false,
            };
            if !added {
                let st = match &mut upsert {
                    Some(st) => st,
                    None => upsert.insert(conn.prepare_cached(UPSERT_ROLLUP).map_err(err)?),
                };
                st.execute(row).map_err(err)?;
            }
        }
        drop((add, upsert));
        let cut = if self.sessions_changed {
            Some(i64::MIN)
        } else {
            first_changed.map(|b| b * BUCKET_MS)
        };
        self.sessions_changed = false;
        self.drop_cached_spend(cut)
    }

    /// Cached spend (schema 9) that priced a moment at or after `cut` is
    /// dropped in the same transaction as the change; `rollup_gen` tells a
    /// reader that priced rows before this commit not to cache what it
    /// priced.
    fn drop_cached_spend(&mut self, cut: Option<i64>) -> Result<()> {
        if let Some(cut) = cut {
            self.ledger
                .conn
                .prepare_cached("DELETE FROM spend_cache WHERE upto_ms > ?1")
                .and_then(|mut s| s.execute([cut]))
                .and_then(|_| {
                    self.ledger.conn.execute(
                        "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'rollup_gen'",
                        [],
                    )
                })
                .map_err(|e| classify_err(&self.ledger.path, self.ledger.busy, e))?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        if !self.tx_open {
            return Ok(());
        }
        if let Err(e) = self
            .flush_rollup()
            .and_then(|()| self.write_back_early())
            .and_then(|()| self.rebuild_indexes())
            .and_then(|()| {
                // With the rollup and indexes up to date.
                let dirty = self.dirty.take();
                let changed = self
                    .ledger
                    .refresh_unwritten(dirty.iter().map(String::as_str))?;
                self.drop_cached_spend(changed)
            })
        {
            self.rollback();
            return Err(e);
        }
        if let Err(e) = self.ledger.conn.execute_batch("COMMIT") {
            self.rollback();
            return Err(self.ledger.err(e));
        }
        self.tx_open = false;
        self.pending = 0;
        self.fresh = None;
        self.ledger.checkpoint_if_large();
        Ok(())
    }

    fn rollback(&mut self) {
        if self.tx_open {
            let _ = self.ledger.conn.execute_batch("ROLLBACK");
            self.tx_open = false;
        }
        self.deltas.clear();
        self.places.clear();
        self.dirty.take();
        self.pending = 0;
        self.fresh = None;
        self.sessions_changed = false;
    }

    /// Before a first load's indexes are built: its rows and rollup are
    /// written to the file (they stay in SQLite's cache, which the index
    /// builds read) and the kernel is asked to start sending them to the
    /// disk. The commit then writes only the pages changed since (the
    /// indexes'), and its `fsync`
    /// finds most of the load already written (on the benchmark machine
    /// it waited ~20 ms for the whole load, with both vCPUs idle, and ~5
    /// ms since). As safe as SQLite writing pages when its cache is full:
    /// the journal is synced first, and a process killed before the
    /// commit leaves a hot journal that rolls the file back.
    fn write_back_early(&self) -> Result<()> {
        if self.fresh.is_some() {
            self.ledger
                .conn
                .cache_flush()
                .map_err(|e| self.ledger.err(e))?;
            // Starting it takes a while (the kernel queues each write):
            // on another thread, while this one builds the indexes.
            let path = self.ledger.path.clone();
            let _ = std::thread::Builder::new()
                .name("octo-budget-writeback".into())
                .spawn(move || start_writeback(&path));
        }
        Ok(())
    }

    /// After a first load: the indexes dropped for it, each built in one
    /// sorted pass.
    fn rebuild_indexes(&mut self) -> Result<()> {
        if self.fresh.is_some() {
            self.ledger
                .conn
                .execute_batch(&format!(
                    "{}; {}; {}; {}; {}",
                    crate::ledger::schema::RESPONSES_MESSAGE_INDEX,
                    crate::ledger::schema::RESPONSES_TS_INDEX,
                    crate::ledger::schema::ROLLUP_BRANCH_INDEX,
                    crate::ledger::schema::ROLLUP_BUCKET_INDEX,
                    crate::ledger::schema::ROLLUP_SESSION_INDEX
                ))
                .map_err(|e| self.ledger.err(e))?;
        }
        Ok(())
    }

    /// [`super::apply_remote`]: a team server's batch, merged inside the
    /// transaction the caller holds open.
    pub(super) fn apply_remote(mut self, batch: RemoteBatch) -> Result<()> {
        self.tx_open = true;
        for r in batch.responses {
            let place_id = self.place(&r.cwd, &r.project)?;
            self.apply_row(Row {
                id: 0,
                message_id: r.message_id,
                request_id: r.request_id,
                session_id: r.session_id.into(),
                place_id,
                model: r.model.into(),
                ts_ms: r.ts_ms,
                branch: r.branch.into(),
                sidechain: r.sidechain,
                counted: true,
                fast: r.fast,
                us_geo: r.us_geo,
                advisor: r.advisor,
                usage: r.usage,
            })?;
        }
        for (a, b) in &batch.links {
            self.link_sessions(a, b)?;
        }
        for c in &batch.costs {
            let place_id = self.place(&c.cwd, &c.project)?;
            self.dirty.mark_str(&c.session_id);
            self.put_cost_state(
                &c.session_id,
                c.start_ms,
                &c.model,
                place_id,
                c.end_ms,
                &c.usage,
            )?;
        }
        let mut st = self
            .ledger
            .conn
            .prepare_cached(UPSERT_SESSION)
            .map_err(|e| self.ledger.err(e))?;
        let mut sessions_changed = 0;
        for s in &batch.sessions {
            sessions_changed += st
                .execute(params![s.session_id, s.cwd, s.first_ts])
                .map_err(|e| self.ledger.err(e))?;
        }
        drop(st);
        // A session's cwd moves spend between arms: all cached spend goes.
        self.sessions_changed |= sessions_changed > 0;
        self.flush_rollup()?;
        let dirty = self.dirty.take();
        // Cached spend the merged rows change is dropped, as a local ingest
        // drops it (flush_rollup above did so for the responses).
        let changed = self
            .ledger
            .refresh_unwritten(dirty.iter().map(String::as_str))?;
        self.drop_cached_spend(changed)
    }

    pub(super) fn finish(mut self) -> Result<()> {
        self.commit()
    }
}

/// Asks the kernel to start writing the file's dirty pages to the disk
/// without waiting for them (a hint: nothing depends on it).
fn start_writeback(path: &Path) {
    #[cfg(target_os = "linux")]
    if let Ok(f) = std::fs::File::open(path) {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid descriptor; the call only starts writeback.
        unsafe {
            libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = path;
}

fn classify_err(path: &Path, busy: std::time::Duration, e: rusqlite::Error) -> LedgerError {
    crate::ledger::classify(path, busy, e)
}
