//! Reading the ledger: token groups for a window of time.
//!
//! Whole 15-minute buckets come from the rollup; the ragged edges of a
//! window (e.g. "up to now") come from the response rows themselves, so a
//! window can start and end at any instant and still be exact.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::params_from_iter;

use super::schema::BUCKET_MS;
use super::{Ledger, Result};
use crate::pricing::PromptClass;
use crate::transcript::Usage;

/// Tokens that share everything pricing and attribution look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub day: NaiveDate,
    pub place_id: i64,
    pub session_id: String,
    /// The git branch ('' for none); always '' unless the filter asked for
    /// branches ([`Filter::by_branch`] or [`Filter::branch`]).
    pub branch: String,
    pub model: String,
    pub fast: bool,
    pub us_geo: bool,
    pub class: PromptClass,
    /// De-duplicated responses (advisor iterations are not responses).
    pub messages: i64,
    pub usage: Usage,
}

/// Where responses ran: a cwd (empty when the records had none) and the
/// transcript folder they were read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub cwd: String,
    pub project: String,
    /// The cwd's real path on this machine when it differs (a symlink),
    /// resolved when the place was first read.
    pub real_cwd: Option<String>,
}

/// Which groups to read.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    /// Only these places.
    pub places: Option<&'a [i64]>,
    /// Only this session.
    pub session: Option<&'a str>,
    /// Only this git branch ('' for responses without one).
    pub branch: Option<&'a str>,
    /// Groups per branch. The rollup has no branch, so this (and
    /// `branch`) reads the window's response rows.
    pub by_branch: bool,
}

impl Ledger {
    /// Token groups for responses with `from <= timestamp < to`.
    pub fn groups(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        filter: &Filter<'_>,
    ) -> Result<Vec<Group>> {
        let from_ms = from.timestamp_millis();
        let to_ms = to.timestamp_millis();
        if to_ms <= from_ms {
            return Ok(Vec::new());
        }
        let first_bucket =
            from_ms.div_euclid(BUCKET_MS) + i64::from(from_ms.rem_euclid(BUCKET_MS) != 0);
        let end_bucket = to_ms.div_euclid(BUCKET_MS); // exclusive
        let mut acc: HashMap<GroupKey, (i64, Usage)> = HashMap::new();
        if filter.by_branch || filter.branch.is_some() {
            self.raw_part(from_ms, to_ms, filter, &mut acc)?;
        } else if first_bucket < end_bucket {
            self.rollup_part(first_bucket, end_bucket, filter, &mut acc)?;
            self.raw_part(from_ms, first_bucket * BUCKET_MS, filter, &mut acc)?;
            self.raw_part(end_bucket * BUCKET_MS, to_ms, filter, &mut acc)?;
        } else {
            self.raw_part(from_ms, to_ms, filter, &mut acc)?;
        }
        let mut out: Vec<Group> = acc
            .into_iter()
            .map(|(k, (messages, usage))| Group {
                day: day_of(k.day),
                place_id: k.place_id,
                session_id: k.session_id,
                branch: k.branch,
                model: k.model,
                fast: k.fast,
                us_geo: k.us_geo,
                class: PromptClass(k.class),
                messages,
                usage,
            })
            .collect();
        out.sort_by(|a, b| {
            (a.day, a.place_id, &a.session_id, &a.model, &a.branch).cmp(&(
                b.day,
                b.place_id,
                &b.session_id,
                &b.model,
                &b.branch,
            ))
        });
        Ok(out)
    }

    fn filter_sql(filter: &Filter<'_>, args: &mut Vec<rusqlite::types::Value>) -> String {
        let mut sql = String::new();
        if let Some(places) = filter.places {
            let ids: Vec<String> = places.iter().map(i64::to_string).collect();
            sql.push_str(&format!(" AND place_id IN ({})", ids.join(",")));
        }
        if let Some(s) = filter.session {
            sql.push_str(&format!(" AND session_id = ?{}", args.len() + 1));
            args.push(s.to_owned().into());
        }
        if let Some(b) = filter.branch {
            sql.push_str(&format!(" AND branch = ?{}", args.len() + 1));
            args.push(b.to_owned().into());
        }
        sql
    }

    fn rollup_part(
        &self,
        b0: i64,
        b1: i64,
        filter: &Filter<'_>,
        acc: &mut HashMap<GroupKey, (i64, Usage)>,
    ) -> Result<()> {
        let mut args: Vec<rusqlite::types::Value> = vec![b0.into(), b1.into()];
        let extra = Self::filter_sql(filter, &mut args);
        let day_buckets = 86_400_000 / BUCKET_MS;
        // Summed per day in `acc` below: a hash map is cheaper than
        // SQLite's sorter for a GROUP BY over a month of buckets.
        let sql = format!(
            "SELECT bucket / {day_buckets}, place_id, session_id, model, fast, us_geo, class, messages,
                    input, output, cache_write_5m, cache_write_1h, cache_read, web_search
             FROM rollup WHERE bucket >= ?1 AND bucket < ?2{extra}"
        );
        let mut st = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let mut rows = st
            .query(params_from_iter(args.iter()))
            .map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let key = GroupKey {
                day: r.get(0).map_err(|e| self.err(e))?,
                place_id: r.get(1).map_err(|e| self.err(e))?,
                session_id: r.get(2).map_err(|e| self.err(e))?,
                branch: String::new(),
                model: r.get(3).map_err(|e| self.err(e))?,
                fast: r.get(4).map_err(|e| self.err(e))?,
                us_geo: r.get(5).map_err(|e| self.err(e))?,
                class: r.get(6).map_err(|e| self.err(e))?,
            };
            let messages: i64 = r.get(7).map_err(|e| self.err(e))?;
            let usage = super::usage_at(r, 8).map_err(|e| self.err(e))?;
            let e = acc.entry(key).or_default();
            e.0 += messages;
            e.1.add(&usage);
        }
        Ok(())
    }

    fn raw_part(
        &self,
        from_ms: i64,
        to_ms: i64,
        filter: &Filter<'_>,
        acc: &mut HashMap<GroupKey, (i64, Usage)>,
    ) -> Result<()> {
        if to_ms <= from_ms {
            return Ok(());
        }
        let mut args: Vec<rusqlite::types::Value> = vec![from_ms.into(), to_ms.into()];
        let extra = Self::filter_sql(filter, &mut args);
        // With a branch, SQLite finds the rows through `responses_branch`
        // (branch, ts_ms): a branch's spend over all time is one range.
        let sql = format!(
            "SELECT ts_ms, place_id, session_id, model, fast, us_geo, advisor,
                    input, output, cache_write_5m, cache_write_1h, cache_read, web_search, branch
             FROM responses WHERE counted = 1 AND ts_ms >= ?1 AND ts_ms < ?2{extra}"
        );
        let mut st = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let mut rows = st
            .query(params_from_iter(args.iter()))
            .map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let ts: i64 = r.get(0).map_err(|e| self.err(e))?;
            let usage = super::usage_at(r, 7).map_err(|e| self.err(e))?;
            let advisor: bool = r.get(6).map_err(|e| self.err(e))?;
            let key = GroupKey {
                day: ts.div_euclid(86_400_000),
                place_id: r.get(1).map_err(|e| self.err(e))?,
                session_id: r.get(2).map_err(|e| self.err(e))?,
                branch: if filter.by_branch {
                    r.get(13).map_err(|e| self.err(e))?
                } else {
                    String::new()
                },
                model: r.get(3).map_err(|e| self.err(e))?,
                fast: r.get(4).map_err(|e| self.err(e))?,
                us_geo: r.get(5).map_err(|e| self.err(e))?,
                class: PromptClass::of(usage.prompt_tokens()).0,
            };
            let e = acc.entry(key).or_default();
            e.0 += i64::from(!advisor);
            e.1.add(&usage);
        }
        Ok(())
    }

    /// The branches (not '') of counted responses in `places`, sorted.
    pub fn branches(&self, places: &[i64]) -> Result<Vec<String>> {
        if places.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = places.iter().map(i64::to_string).collect();
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT DISTINCT branch FROM responses
                 WHERE counted = 1 AND branch != '' AND place_id IN ({}) ORDER BY branch",
                ids.join(",")
            ))
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| r.get(0))
            .and_then(|it| it.collect::<std::result::Result<Vec<String>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Every place, by id.
    pub fn places(&self) -> Result<HashMap<i64, Place>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id, cwd, project, real_cwd FROM places")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                let cwd: String = r.get(1)?;
                // NULL: a place from before real paths were kept.
                let real_cwd = match r.get::<_, Option<String>>(3)? {
                    Some(real) => Some(real).filter(|s| !s.is_empty()),
                    None => real_path(&cwd),
                };
                Ok((
                    r.get(0)?,
                    Place {
                        cwd,
                        project: r.get(2)?,
                        real_cwd,
                    },
                ))
            })
            .and_then(|it| it.collect::<std::result::Result<HashMap<_, _>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// The cwd of each session among `groups` that ran in a place without
    /// one (records that had no `cwd`), for attribution: a session's cwd is
    /// that of its earliest record.
    pub fn session_cwds(
        &self,
        groups: &[Group],
        places: &HashMap<i64, Place>,
    ) -> Result<HashMap<String, String>> {
        let sessions = groups
            .iter()
            .filter(|g| places.get(&g.place_id).is_some_and(|p| p.cwd.is_empty()))
            .map(|g| g.session_id.as_str());
        let mut st = self
            .conn
            .prepare_cached("SELECT cwd FROM sessions WHERE session_id = ?1")
            .map_err(|e| self.err(e))?;
        let mut out = HashMap::new();
        for s in sessions {
            if out.contains_key(s) {
                continue;
            }
            let cwd: Option<String> =
                rusqlite::OptionalExtension::optional(st.query_row([s], |r| r.get(0)))
                    .map_err(|e| self.err(e))?;
            if let Some(c) = cwd {
                out.insert(s.to_owned(), c);
            }
        }
        Ok(out)
    }

    /// The cwd of each of `sessions` (that of its earliest record), for
    /// those the ledger knows one of.
    pub fn first_cwds<'s>(
        &self,
        sessions: impl IntoIterator<Item = &'s str>,
    ) -> Result<HashMap<String, String>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT cwd FROM sessions WHERE session_id = ?1")
            .map_err(|e| self.err(e))?;
        let mut out = HashMap::new();
        for s in sessions {
            if out.contains_key(s) {
                continue;
            }
            let cwd: Option<String> =
                rusqlite::OptionalExtension::optional(st.query_row([s], |r| r.get(0)))
                    .map_err(|e| self.err(e))?;
            if let Some(c) = cwd.filter(|c| !c.is_empty()) {
                out.insert(s.to_owned(), c);
            }
        }
        Ok(out)
    }

    /// True once every transcript found has been read through at least once
    /// (a full ingest finished).
    pub fn history_read(&self) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM meta WHERE key = 'history_read')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Records that a full ingest finished.
    pub fn mark_history_read(&self) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('history_read', '1')",
                [],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The cwd of a session's earliest record, if the ledger has seen it.
    pub fn session_cwd(&self, session_id: &str) -> Result<Option<String>> {
        rusqlite::OptionalExtension::optional(self.conn.query_row(
            "SELECT cwd FROM sessions WHERE session_id = ?1",
            [session_id],
            |r| r.get::<_, String>(0),
        ))
        .map(|c| c.filter(|c| !c.is_empty()))
        .map_err(|e| self.err(e))
    }

    /// The branch of a session's latest response (or prompt) that named
    /// one, if the ledger has seen one.
    pub fn session_branch(&self, session_id: &str) -> Result<Option<String>> {
        rusqlite::OptionalExtension::optional(self.conn.query_row(
            "SELECT branch FROM session_branches WHERE session_id = ?1",
            [session_id],
            |r| r.get::<_, String>(0),
        ))
        .map(|b| b.filter(|b| !b.is_empty()))
        .map_err(|e| self.err(e))
    }

    /// The first and last timestamps of counted responses, if any.
    pub fn time_span(&self) -> Result<Option<(DateTime<Utc>, DateTime<Utc>)>> {
        let (lo, hi): (Option<i64>, Option<i64>) = self
            .conn
            .query_row(
                "SELECT MIN(ts_ms), MAX(ts_ms) FROM responses WHERE counted = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.err(e))?;
        Ok(
            match (
                lo.and_then(DateTime::from_timestamp_millis),
                hi.and_then(DateTime::from_timestamp_millis),
            ) {
                (Some(a), Some(b)) => Some((a, b)),
                _ => None,
            },
        )
    }

    /// Opens a read transaction (one snapshot for several queries) unless
    /// one is open already; true when it opened one (then call
    /// [`Ledger::end_read`]).
    pub fn begin_read(&self) -> Result<bool> {
        if !self.conn.is_autocommit() {
            return Ok(false);
        }
        self.conn
            .execute_batch("BEGIN DEFERRED")
            .map(|()| true)
            .map_err(|e| self.err(e))
    }

    /// Ends the read transaction [`Ledger::begin_read`] opened.
    pub fn end_read(&self) {
        let _ = self.conn.execute_batch("COMMIT");
    }

    /// How many write transactions have changed the rollup (schema 9):
    /// read before the rows a cached spend is priced from.
    pub fn rollup_gen(&self) -> Result<i64> {
        rusqlite::OptionalExtension::optional(self.conn.query_row(
            "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'rollup_gen'",
            [],
            |r| r.get::<_, i64>(0),
        ))
        .map(|g| g.unwrap_or(0))
        .map_err(|e| self.err(e))
    }

    /// A cached spend: the priced total (picodollars) of whole UTC days
    /// before `upto_ms`, for the scope `key` names.
    pub fn cached_spend(&self, key: i64) -> Result<Option<(i64, crate::money::Picos)>> {
        let row: Option<(i64, String)> = rusqlite::OptionalExtension::optional(
            self.conn
                .prepare_cached("SELECT upto_ms, picos FROM spend_cache WHERE key = ?1")
                .and_then(|mut s| s.query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))),
        )
        .map_err(|e| self.err(e))?;
        // A value that does not parse is treated as absent (priced again).
        Ok(row.and_then(|(upto, p)| {
            p.parse::<i128>()
                .ok()
                .map(|p| (upto, crate::money::Picos(p)))
        }))
    }

    /// Caches a spend priced from rows read after `rollup_gen` returned
    /// `gen`: written only if no rollup change committed since (else the
    /// rows may already be stale). Best effort: a busy or read-only ledger
    /// leaves the cache as it was; the caller's figure is exact either way.
    pub fn cache_spend(&self, key: i64, upto_ms: i64, picos: crate::money::Picos, gen: i64) {
        // Never wait for another writer here: the next call caches it.
        if self.conn.busy_timeout(std::time::Duration::ZERO).is_err() {
            return;
        }
        let _ = self
            .conn
            .prepare_cached(
                "INSERT OR REPLACE INTO spend_cache (key, upto_ms, picos)
                 SELECT ?1, ?2, ?3 WHERE (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'rollup_gen') = ?4",
            )
            .and_then(|mut s| s.execute(rusqlite::params![key, upto_ms, picos.0.to_string(), gen]));
        let _ = self.conn.busy_timeout(self.busy);
    }

    /// Lines skipped as malformed, over every file the ledger has read.
    pub fn skipped_lines(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row(
                "SELECT COALESCE(SUM(skipped_lines), 0) FROM files",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        Ok(n.max(0) as u64)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    day: i64,
    place_id: i64,
    session_id: String,
    branch: String,
    model: String,
    fast: bool,
    us_geo: bool,
    class: u8,
}

fn day_of(days_since_epoch: i64) -> NaiveDate {
    DateTime::from_timestamp(days_since_epoch * 86_400, 0)
        .map(|d| d.date_naive())
        .unwrap_or(NaiveDate::MIN)
}

/// The real path of a directory when it exists on this machine and its
/// spelling differs (a symlink on the way); `None` otherwise.
pub(crate) fn real_path(path: &str) -> Option<String> {
    if path.is_empty() {
        return None;
    }
    let real = std::fs::canonicalize(path).ok()?;
    let real = real.to_string_lossy();
    (real != path.trim_end_matches('/')).then(|| real.into_owned())
}
