//! Reading the ledger: token groups for a window of time.
//!
//! Whole 15-minute buckets come from the rollup; the ragged edges of a
//! window (e.g. "up to now") come from the response rows themselves, so a
//! window can start and end at any instant and still be exact.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::params_from_iter;

use super::schema::BUCKET_MS;
use super::{Ledger, Names, Places, Result};
use crate::model::Usage;
use crate::pricing::PromptClass;

pub use crate::model::{Group, Place};

/// Which groups to read.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    /// Only these places.
    pub places: Option<&'a [i64]>,
    /// Only this session.
    pub session: Option<&'a str>,
    /// Only this git branch ('' for responses without one).
    pub branch: Option<&'a str>,
    /// Groups per branch.
    pub by_branch: bool,
}

impl Ledger {
    /// Token groups for responses with `from <= timestamp < to`, and the
    /// unwritten requests of the runs that ended in that window.
    pub fn groups(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        filter: &Filter<'_>,
    ) -> Result<Vec<Group>> {
        let mut out =
            self.transcribed_groups(from.timestamp_millis(), to.timestamp_millis(), filter)?;
        out.extend(self.unwritten_groups(
            from.timestamp_millis(),
            to.timestamp_millis(),
            filter,
        )?);
        Ok(out)
    }

    /// Token groups for responses with `from_ms <= timestamp < to_ms`.
    fn transcribed_groups(
        &self,
        from_ms: i64,
        to_ms: i64,
        filter: &Filter<'_>,
    ) -> Result<Vec<Group>> {
        if to_ms <= from_ms {
            return Ok(Vec::new());
        }
        let first_bucket =
            from_ms.div_euclid(BUCKET_MS) + i64::from(from_ms.rem_euclid(BUCKET_MS) != 0);
        let end_bucket = to_ms.div_euclid(BUCKET_MS); // exclusive
        let mut acc = Acc::default();
        if first_bucket < end_bucket {
            self.rollup_part(first_bucket, end_bucket, filter, &mut acc)?;
            self.raw_part(from_ms, first_bucket * BUCKET_MS, filter, &mut acc)?;
            self.raw_part(end_bucket * BUCKET_MS, to_ms, filter, &mut acc)?;
        } else {
            self.raw_part(from_ms, to_ms, filter, &mut acc)?;
        }
        // In order of day, place, session, model and branch (then the
        // rest, so that the order does not depend on the hash map's): the
        // names ranked once, the groups sorted by ranks.
        let names = acc.names.all();
        let mut by_name: Vec<u32> = (0..names.len() as u32).collect();
        by_name.sort_unstable_by(|&a, &b| names[a as usize].cmp(&names[b as usize]));
        let mut rank = vec![0u32; names.len()];
        for (r, &i) in by_name.iter().enumerate() {
            rank[i as usize] = r as u32;
        }
        let mut groups: Vec<(GroupKey, (i64, Usage))> = acc.groups.into_iter().collect();
        groups.sort_unstable_by_key(|(k, _)| {
            (
                k.day,
                k.place_id,
                rank[k.session as usize],
                rank[k.model as usize],
                rank[k.branch as usize],
                k.fast,
                k.us_geo,
                k.class,
            )
        });
        let name = |i: u32| names[i as usize].clone();
        let out: Vec<Group> = groups
            .into_iter()
            .map(|(k, (messages, usage))| Group {
                day: day_of(k.day),
                place_id: k.place_id,
                session_id: name(k.session),
                branch: name(k.branch),
                model: name(k.model),
                fast: k.fast,
                us_geo: k.us_geo,
                class: PromptClass(k.class),
                messages,
                usage,
                unwritten: false,
            })
            .collect();
        Ok(out)
    }

    /// The requests Claude Code counted but never wrote as responses, for
    /// the runs that ended in `[from_ms, to_ms)`.
    ///
    /// A count is what one `cost-state` `startTime` totals: one process
    /// run, every `--resume` of it (cumulative totals, same `startTime`) and
    /// every `--fork-session` of it (a new session whose totals carry the
    /// parent's, same `startTime`). At the end of each of its runs (a
    /// `cost-state`), its total per model and kind is the largest any of
    /// its sessions had reported by then (a fork carries its parent); its
    /// transcribed part is every counted response of its sessions
    /// (subagents included: they carry the parent's session id) from
    /// `startTime` to that end; the difference, never negative, is what is
    /// unwritten so far. Each run adds what the largest such figure so far
    /// grew by, placed at the run's end, in its session's place. The runs'
    /// parts add up to that figure, which never exceeds what was really
    /// unwritten (Claude Code's totals are at most every request, the
    /// transcribed part at least the responses they include), so nothing
    /// counts twice; a running session's earlier runs keep theirs.
    pub fn unwritten_groups(
        &self,
        from_ms: i64,
        to_ms: i64,
        filter: &Filter<'_>,
    ) -> Result<Vec<Group>> {
        if to_ms <= from_ms {
            return Ok(Vec::new());
        }
        // Kept up to date by every ingest (see `refresh_unwritten`).
        let mut args: Vec<rusqlite::types::Value> = vec![from_ms.into(), to_ms.into()];
        let extra = Self::filter_sql(filter, &mut args);
        let sql = format!(
            "SELECT end_ms, place_id, session_id, model,
                    input, output, cache_write_5m, cache_write_1h, cache_read, web_search, branch
             FROM unwritten WHERE end_ms >= ?1 AND end_ms < ?2{extra}"
        );
        let with_branch = filter.by_branch || filter.branch.is_some();
        let mut st = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params_from_iter(args.iter()), |r| {
                let end_ms: i64 = r.get(0)?;
                Ok(Group {
                    day: day_of(end_ms.div_euclid(86_400_000)),
                    place_id: r.get(1)?,
                    session_id: r.get(2)?,
                    // The session's branch when its run ended.
                    branch: if with_branch {
                        r.get(10)?
                    } else {
                        String::new()
                    },
                    model: r.get(3)?,
                    // Claude Code's totals do not say which requests were
                    // fast, US-only or long-context: standard rates.
                    fast: false,
                    us_geo: false,
                    class: PromptClass(0),
                    messages: 0,
                    usage: super::usage_at(r, 4)?,
                    unwritten: true,
                })
            })
            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Computes again the unwritten parts of the counts (`startTime`s) that
    /// `sessions` belong to, from their `cost_states` and transcribed
    /// responses, into `unwritten`. Called by ingest (in its transaction,
    /// with the rollup up to date) for the sessions it changed. Returns the
    /// earliest `end_ms` whose parts changed, if any (cached spend from
    /// there on is stale: schema 9).
    pub(crate) fn refresh_unwritten<'s>(
        &self,
        sessions: impl IntoIterator<Item = &'s str>,
    ) -> Result<Option<i64>> {
        let mut starts: Vec<i64> = Vec::new();
        {
            let mut st = self
                .conn
                .prepare_cached("SELECT DISTINCT start_ms FROM cost_states WHERE session_id = ?1")
                .map_err(|e| self.err(e))?;
            for s in sessions {
                let found = st
                    .query_map([s], |r| r.get::<_, i64>(0))
                    .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(|e| self.err(e))?;
                starts.extend(found);
            }
        }
        starts.sort_unstable();
        starts.dedup();
        let mut first_changed: Option<i64> = None;
        for start in starts {
            let runs = self.unwritten_of_count(start)?;
            // The count's parts before and after, as the table holds them
            // (several runs' parts with one key add up).
            type Part = (i64, String, String, i64, [u64; 6]);
            let mut before: Vec<Part> = self
                .conn
                .prepare_cached(
                    "SELECT end_ms, session_id, model, place_id, input, output, cache_write_5m,
                            cache_write_1h, cache_read, web_search
                     FROM unwritten WHERE start_ms = ?1",
                )
                .and_then(|mut st| {
                    st.query_map([start], |r| {
                        let u = super::usage_at(r, 4)?;
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, parts_of(&u)))
                    })
                    .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
                })
                .map_err(|e| self.err(e))?;
            let mut after: Vec<Part> = Vec::new();
            for (end_ms, g) in &runs {
                match after
                    .iter_mut()
                    .find(|p| p.0 == *end_ms && p.1 == g.session_id && p.2 == g.model)
                {
                    Some(p) => {
                        for (a, b) in p.4.iter_mut().zip(parts_of(&g.usage)) {
                            *a += b;
                        }
                    }
                    None => after.push((
                        *end_ms,
                        g.session_id.clone(),
                        g.model.clone(),
                        g.place_id,
                        parts_of(&g.usage),
                    )),
                }
            }
            before.sort();
            after.sort();
            let changed = before
                .iter()
                .filter(|p| !after.contains(p))
                .chain(after.iter().filter(|p| !before.contains(p)))
                .map(|p| p.0)
                .min();
            if let Some(c) = changed {
                first_changed = Some(first_changed.map_or(c, |f| f.min(c)));
            }
            self.conn
                .prepare_cached("DELETE FROM unwritten WHERE start_ms = ?1")
                .and_then(|mut st| st.execute([start]))
                .map_err(|e| self.err(e))?;
            let mut st = self
                .conn
                .prepare_cached(
                    "INSERT INTO unwritten (start_ms, end_ms, session_id, model, place_id,
                        input, output, cache_write_5m, cache_write_1h, cache_read, web_search, branch)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,
                        COALESCE((SELECT branch FROM session_branches WHERE session_id = ?3), ''))
                     ON CONFLICT (start_ms, end_ms, session_id, model) DO UPDATE SET
                        input = input + excluded.input, output = output + excluded.output,
                        cache_write_5m = cache_write_5m + excluded.cache_write_5m,
                        cache_write_1h = cache_write_1h + excluded.cache_write_1h,
                        cache_read = cache_read + excluded.cache_read,
                        web_search = web_search + excluded.web_search",
                )
                .map_err(|e| self.err(e))?;
            for (end_ms, g) in runs {
                let u = &g.usage;
                st.execute(rusqlite::params![
                    start,
                    end_ms,
                    g.session_id,
                    g.model,
                    g.place_id,
                    u.input as i64,
                    u.output as i64,
                    u.cache_write_5m as i64,
                    u.cache_write_1h as i64,
                    u.cache_read as i64,
                    u.web_search as i64
                ])
                .map_err(|e| self.err(e))?;
            }
        }
        Ok(first_changed)
    }

    /// Every run's unwritten part of one count (as
    /// [`Ledger::unwritten_groups`] says), with the end of the run.
    fn unwritten_of_count(&self, start_ms: i64) -> Result<Vec<(i64, Group)>> {
        struct StateRow {
            session_id: String,
            model: String,
            place_id: i64,
            end_ms: i64,
            usage: Usage,
        }
        let rows: Vec<StateRow> = {
            let mut st = self
                .conn
                .prepare_cached(
                    "SELECT session_id, model, place_id, end_ms, input, output, cache_write_5m,
                            cache_write_1h, cache_read, web_search
                     FROM cost_states WHERE start_ms = ?1 ORDER BY end_ms, session_id, model",
                )
                .map_err(|e| self.err(e))?;
            let rows = st
                .query_map([start_ms], |r| {
                    Ok(StateRow {
                        session_id: r.get(0)?,
                        model: r.get(1)?,
                        place_id: r.get(2)?,
                        end_ms: r.get(3)?,
                        usage: super::usage_at(r, 4)?,
                    })
                })
                .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(|e| self.err(e))?;
            rows
        };
        // The count's sessions, and those that share responses with them (a
        // fork still running, which has no cost-state yet, may hold the row
        // of a response its parent's file has too).
        let mut sessions: Vec<String> = rows.iter().map(|r| r.session_id.clone()).collect();
        {
            let mut st = self
                .conn
                .prepare_cached("SELECT b FROM session_links WHERE a = ?1")
                .map_err(|e| self.err(e))?;
            for s in sessions.clone() {
                let linked = st
                    .query_map([&s], |r| r.get::<_, String>(0))
                    .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(|e| self.err(e))?;
                sessions.extend(linked);
            }
        }
        sessions.sort_unstable();
        sessions.dedup();
        let normalise = crate::pricing::model::normalise;
        // Per model (as the price table knows it): the name shown, Claude
        // Code's total so far, what was transcribed so far, and the largest
        // unwritten figure so far.
        struct PerModel {
            key: String,
            name: String,
            total: Usage,
            written: Usage,
            unwritten: Usage,
        }
        let mut models: Vec<PerModel> = Vec::new();
        let mut out = Vec::new();
        let mut written_to = start_ms; // transcribed responses read up to here (exclusive)
        let mut i = 0;
        while i < rows.len() {
            // One run's end: every row with this end_ms.
            let end_ms = rows[i].end_ms;
            let first = i;
            while i < rows.len() && rows[i].end_ms == end_ms {
                let r = &rows[i];
                let key = normalise(&r.model);
                match models.iter_mut().find(|m| m.key == key) {
                    Some(m) => m.total = m.total.max(&r.usage),
                    None => models.push(PerModel {
                        key,
                        name: r.model.clone(),
                        total: r.usage,
                        written: Usage::default(),
                        unwritten: Usage::default(),
                    }),
                }
                i += 1;
            }
            let upto = end_ms.saturating_add(1);
            if upto > written_to {
                for s in &sessions {
                    let f = Filter {
                        session: Some(s),
                        ..Filter::default()
                    };
                    for g in self.transcribed_groups(written_to, upto, &f)? {
                        let key = normalise(&g.model);
                        match models.iter_mut().find(|m| m.key == key) {
                            Some(m) => m.written.add(&g.usage),
                            None => models.push(PerModel {
                                key,
                                name: g.model.clone(),
                                total: Usage::default(),
                                written: g.usage,
                                unwritten: Usage::default(),
                            }),
                        }
                    }
                }
                written_to = upto;
            }
            let (session_id, place_id) = (rows[first].session_id.clone(), rows[first].place_id);
            for m in &mut models {
                let (t, w) = (&m.total, &m.written);
                let now = Usage {
                    input: t.input.saturating_sub(w.input),
                    output: t.output.saturating_sub(w.output),
                    cache_write_5m: t.cache_write_5m.saturating_sub(w.cache_write_5m),
                    cache_write_1h: t.cache_write_1h.saturating_sub(w.cache_write_1h),
                    cache_read: t.cache_read.saturating_sub(w.cache_read),
                    web_search: t.web_search.saturating_sub(w.web_search),
                }
                .max(&m.unwritten);
                let u = &m.unwritten;
                let grew = Usage {
                    input: now.input - u.input,
                    output: now.output - u.output,
                    cache_write_5m: now.cache_write_5m - u.cache_write_5m,
                    cache_write_1h: now.cache_write_1h - u.cache_write_1h,
                    cache_read: now.cache_read - u.cache_read,
                    web_search: now.web_search - u.web_search,
                };
                m.unwritten = now;
                if grew != Usage::default() {
                    out.push((
                        end_ms,
                        Group {
                            day: day_of(end_ms.div_euclid(86_400_000)),
                            place_id,
                            session_id: session_id.clone(),
                            branch: String::new(),
                            model: m.name.clone(),
                            // Claude Code's totals do not say which requests were
                            // fast, US-only or long-context: standard rates.
                            fast: false,
                            us_geo: false,
                            class: PromptClass(0),
                            messages: 0,
                            usage: grew,
                            unwritten: true,
                        },
                    ));
                }
            }
        }
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

    fn rollup_part(&self, b0: i64, b1: i64, filter: &Filter<'_>, acc: &mut Acc) -> Result<()> {
        let mut args: Vec<rusqlite::types::Value> = vec![b0.into(), b1.into()];
        let extra = Self::filter_sql(filter, &mut args);
        let day_buckets = 86_400_000 / BUCKET_MS;
        // A window over most of the rollup's buckets (`--period all`, or a
        // month that holds most of the history) reads the table in its own
        // order: through `rollup_bucket` each row costs a second lookup.
        // (`+bucket` keeps SQLite off the index.) One branch's rows are
        // found through `rollup_branch` (branch, bucket), whatever the window.
        let bucket = if filter.branch.is_none() && self.mostly_covers(b0, b1)? {
            "+bucket"
        } else {
            "bucket"
        };
        // Summed per day in `acc` below: a hash map is cheaper than
        // SQLite's sorter for a GROUP BY over a month of buckets.
        let sql = format!(
            "SELECT bucket / {day_buckets}, place_id, session_id, model, fast, us_geo, class, messages,
                    input, output, cache_write_5m, cache_write_1h, cache_read, web_search, branch
             FROM rollup WHERE {bucket} >= ?1 AND {bucket} < ?2{extra}"
        );
        let mut st = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let mut rows = st
            .query(params_from_iter(args.iter()))
            .map_err(|e| self.err(e))?;
        let no_branch = acc.names.id("");
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let key = GroupKey {
                day: r.get(0).map_err(|e| self.err(e))?,
                place_id: r.get(1).map_err(|e| self.err(e))?,
                session: acc.names.id(text(r, 2).map_err(|e| self.err(e))?),
                branch: if filter.by_branch {
                    acc.names.id(text(r, 14).map_err(|e| self.err(e))?)
                } else {
                    no_branch
                },
                model: acc.names.id(text(r, 3).map_err(|e| self.err(e))?),
                fast: r.get(4).map_err(|e| self.err(e))?,
                us_geo: r.get(5).map_err(|e| self.err(e))?,
                class: r.get(6).map_err(|e| self.err(e))?,
            };
            let messages: i64 = r.get(7).map_err(|e| self.err(e))?;
            let usage = super::usage_at(r, 8).map_err(|e| self.err(e))?;
            let e = acc.groups.entry(key).or_default();
            e.0 += messages;
            e.1.add(&usage);
        }
        Ok(())
    }

    /// Whether buckets `[b0, b1)`, longer than a week, span at least half
    /// of the rollup's first to last bucket (two index probes).
    fn mostly_covers(&self, b0: i64, b1: i64) -> Result<bool> {
        if b1.saturating_sub(b0) <= 7 * 86_400_000 / BUCKET_MS {
            return Ok(false);
        }
        let (first, last): (Option<i64>, Option<i64>) = self
            .conn
            .prepare_cached(
                "SELECT (SELECT min(bucket) FROM rollup), (SELECT max(bucket) FROM rollup)",
            )
            .and_then(|mut st| st.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
            .map_err(|e| self.err(e))?;
        let (Some(first), Some(last)) = (first, last) else {
            return Ok(false);
        };
        let span = i128::from(last) - i128::from(first) + 1;
        let covered = i128::from(b1.min(last + 1)) - i128::from(b0.max(first));
        Ok(covered * 2 >= span)
    }

    fn raw_part(&self, from_ms: i64, to_ms: i64, filter: &Filter<'_>, acc: &mut Acc) -> Result<()> {
        if to_ms <= from_ms {
            return Ok(());
        }
        let mut args: Vec<rusqlite::types::Value> = vec![from_ms.into(), to_ms.into()];
        let extra = Self::filter_sql(filter, &mut args);
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
            let branch = if filter.by_branch {
                text(r, 13).map_err(|e| self.err(e))?
            } else {
                ""
            };
            let key = GroupKey {
                day: ts.div_euclid(86_400_000),
                place_id: r.get(1).map_err(|e| self.err(e))?,
                session: acc.names.id(text(r, 2).map_err(|e| self.err(e))?),
                branch: acc.names.id(branch),
                model: acc.names.id(text(r, 3).map_err(|e| self.err(e))?),
                fast: r.get(4).map_err(|e| self.err(e))?,
                us_geo: r.get(5).map_err(|e| self.err(e))?,
                class: PromptClass::of(usage.prompt_tokens()).0,
            };
            let e = acc.groups.entry(key).or_default();
            e.0 += i64::from(!advisor);
            e.1.add(&usage);
        }
        Ok(())
    }

    /// The branches (not '') with counted spend in `places` (rollup rows
    /// that a demoted copy brought to zero do not count), sorted.
    pub fn branches(&self, places: &[i64]) -> Result<Vec<String>> {
        if places.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = places.iter().map(i64::to_string).collect();
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT DISTINCT branch FROM rollup
                 WHERE branch != '' AND place_id IN ({})
                   AND (messages != 0 OR input != 0 OR output != 0 OR cache_write_5m != 0
                        OR cache_write_1h != 0 OR cache_read != 0 OR web_search != 0)
                 ORDER BY branch",
                ids.join(",")
            ))
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| r.get(0))
            .and_then(|it| it.collect::<std::result::Result<Vec<String>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Every place, by id. Places are only ever added (a row is never
    /// changed or removed), so a connection keeps those it read and reads
    /// only rows added since: what a call costs does not grow with the
    /// number of places. Inside a transaction of its own (whose new rows a
    /// rollback could take back) it reads them all and keeps nothing.
    pub fn places(&self) -> Result<Places> {
        if !self.conn.is_autocommit() {
            let mut all = HashMap::new();
            self.read_places_after(0, &mut all)?;
            return Ok(Arc::new(all));
        }
        let mut seen = self.places_seen.borrow_mut();
        let (last, places) = seen.get_or_insert_with(|| (0, Arc::new(HashMap::new())));
        let newest = self.read_places_after(*last, Arc::make_mut(places))?;
        *last = newest.max(*last);
        Ok(Arc::clone(places))
    }

    /// Adds the places with an id above `after` to `into`; returns the
    /// largest id read (`after` if none).
    fn read_places_after(&self, after: i64, into: &mut HashMap<i64, Place>) -> Result<i64> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id, cwd, project, real_cwd FROM places WHERE id > ?1")
            .map_err(|e| self.err(e))?;
        let mut rows = st.query([after]).map_err(|e| self.err(e))?;
        let mut last = after;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let id: i64 = r.get(0).map_err(|e| self.err(e))?;
            let cwd: String = r.get(1).map_err(|e| self.err(e))?;
            // NULL: a place from before real paths were kept.
            let real_cwd = match r.get::<_, Option<String>>(3).map_err(|e| self.err(e))? {
                Some(real) => Some(real).filter(|s| !s.is_empty()),
                None => real_path(&cwd),
            };
            let project = r.get(2).map_err(|e| self.err(e))?;
            into.insert(
                id,
                Place {
                    cwd,
                    project,
                    real_cwd,
                },
            );
            last = last.max(id);
        }
        Ok(last)
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
        self.cwds_of(sessions, true)
    }

    /// The cwd of each of `sessions` (that of its earliest record), for
    /// those the ledger knows one of.
    pub fn first_cwds<'s>(
        &self,
        sessions: impl IntoIterator<Item = &'s str>,
    ) -> Result<HashMap<String, String>> {
        self.cwds_of(sessions, false)
    }

    /// The sessions table's cwd of each of `sessions` it has one for (an
    /// empty one too when `keep_empty`).
    fn cwds_of<'s>(
        &self,
        sessions: impl IntoIterator<Item = &'s str>,
        keep_empty: bool,
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
            if let Some(c) = cwd.filter(|c| keep_empty || !c.is_empty()) {
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
                "SELECT MIN(t), MAX(t) FROM (SELECT MIN(ts_ms) AS t FROM responses WHERE counted = 1
                   UNION ALL SELECT MAX(ts_ms) FROM responses WHERE counted = 1
                   UNION ALL SELECT MIN(end_ms) FROM unwritten UNION ALL SELECT MAX(end_ms) FROM unwritten)",
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

    /// SQLite's `data_version`: it changes when another connection commits
    /// to the ledger (this one's own commits leave it as it was).
    pub fn data_version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
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

/// Token sums per group, the strings of their keys each kept once (a
/// window's rows repeat a few sessions and models thousands of times).
#[derive(Default)]
struct Acc {
    groups: HashMap<GroupKey, (i64, Usage), foldhash::fast::RandomState>,
    names: Names,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct GroupKey {
    day: i64,
    place_id: i64,
    /// In [`Acc::names`].
    session: u32,
    branch: u32,
    model: u32,
    fast: bool,
    us_geo: bool,
    class: u8,
}

/// Column `i` of `r` as text, borrowed from the row.
fn text<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    r.get_ref(i)?.as_str().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    })
}

/// The six token fields of `u`, for comparing parts.
fn parts_of(u: &Usage) -> [u64; 6] {
    [
        u.input,
        u.output,
        u.cache_write_5m,
        u.cache_write_1h,
        u.cache_read,
        u.web_search,
    ]
}

fn day_of(days_since_epoch: i64) -> NaiveDate {
    DateTime::from_timestamp(days_since_epoch * 86_400, 0)
        .map(|d| d.date_naive())
        .unwrap_or(NaiveDate::MIN)
}

/// The real path of a directory when it exists on this machine and its
/// spelling differs (a symlink on the way); `None` otherwise.
pub fn real_path(path: &str) -> Option<String> {
    if path.is_empty() {
        return None;
    }
    let real = std::fs::canonicalize(path).ok()?;
    let real = real.to_string_lossy();
    (real != path.trim_end_matches('/')).then(|| real.into_owned())
}
