//! The seam between the core and a ledger backend: what `check`, `status`,
//! `statusline`, `report`, `alerts` and `init` ask a ledger for. The
//! SQLite [`Ledger`] implements it; a team backend (PostgreSQL) implements
//! the same.
//!
//! The figures `check` needs cost the same whatever the history: spend is
//! asked for as [`Group`]s of one window (per day, place, session, model
//! and price flags, summed by the backend: the SQLite ledger reads them
//! from its 15-minute rollup plus the window's ragged edges), optionally
//! only for an arm's candidate places or one session ([`Filter`]); a
//! session's cwd, its halt and a warning already given are single-key
//! lookups (a branch cap reads its arm's responses of that branch through
//! an index); and a calendar cap's whole past UTC days come from a spend
//! cache the backend keeps ([`Store::cached_spend`]), so a call prices only
//! today's rows. Attribution and prices are applied by the core, so a config
//! change re-prices all history.
//!
//! Reading transcripts into the ledger (`ingest`) and the alert outbox are
//! the SQLite ledger's own methods for now.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::halts::Halt;
use super::notices::NoticeKey;
use super::query::{Filter, Group, Place};
use super::{Ledger, Places, Result};
use crate::money::Picos;

/// What the core reads from (and records in) a ledger.
pub trait Store {
    /// Token groups of responses with `from <= timestamp < to`, and of
    /// the requests Claude Code counted but never wrote (`cost-state`) for
    /// the runs that ended in that window (`Group::unwritten`).
    fn groups(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        filter: &Filter<'_>,
    ) -> Result<Vec<Group>>;
    /// Every place (cwd and transcript folder), by id.
    fn places(&self) -> Result<Places>;
    /// The cwd of each session among `groups` that ran in a place without
    /// one (its earliest record's), for attribution.
    fn session_cwds(
        &self,
        groups: &[Group],
        places: &HashMap<i64, Place>,
    ) -> Result<HashMap<String, String>>;
    /// The cwd of each of `sessions` the ledger knows one of.
    fn first_cwds(&self, sessions: &[&str]) -> Result<HashMap<String, String>>;
    /// The cwd of a session's earliest record, if the ledger has seen it.
    fn session_cwd(&self, session_id: &str) -> Result<Option<String>>;
    /// The git branch of a session's latest record that named one.
    fn session_branch(&self, session_id: &str) -> Result<Option<String>>;
    /// The branches (not none) of counted responses in `places`, sorted.
    fn branches(&self, places: &[i64]) -> Result<Vec<String>>;
    /// The first and last timestamps of counted responses, if any.
    fn time_span(&self) -> Result<Option<(DateTime<Utc>, DateTime<Utc>)>>;
    /// Transcript lines skipped as malformed.
    fn skipped_lines(&self) -> Result<u64>;
    /// True once all transcript history has been read.
    fn history_read(&self) -> Result<bool>;
    /// The kill switch's halt of a session, if it is halted.
    fn halt(&self, session: &str) -> Result<Option<Halt>>;
    /// Halts a session (the first reason is kept).
    fn record_halt(&self, session: &str, head: &str, tail: &str, now_ms: i64) -> Result<()>;
    /// Lifts a session's halt.
    fn clear_halt(&self, session: &str) -> Result<()>;
    /// True when this warning was given already.
    fn notice_given(&self, key: &NoticeKey<'_>) -> Result<bool>;
    /// Records a warning as given; false when another process did first.
    fn record_notice(&self, key: &NoticeKey<'_>, now_ms: i64) -> Result<bool>;

    // The spend cache: a scope's priced spend over whole past UTC days, so
    // that `check` prices only today's rows however long the period.

    /// Opens a read snapshot for several queries unless one is open; true
    /// when it opened one (then call [`Store::end_read`]).
    fn begin_read(&self) -> Result<bool>;
    /// Ends the snapshot [`Store::begin_read`] opened.
    fn end_read(&self);
    /// A counter of the write transactions that changed spend: read before
    /// the rows a cached figure is priced from.
    fn rollup_gen(&self) -> Result<i64>;
    /// The cached spend of scope `key`: picodollars of the whole UTC days
    /// before the returned instant (ms).
    fn cached_spend(&self, key: i64) -> Result<Option<(i64, Picos)>>;
    /// Caches a spend priced from rows read when [`Store::rollup_gen`] was
    /// `gen`, unless spend changed since. Best effort.
    fn cache_spend(&self, key: i64, upto_ms: i64, picos: Picos, gen: i64);
}

impl Store for Ledger {
    fn groups(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        filter: &Filter<'_>,
    ) -> Result<Vec<Group>> {
        Ledger::groups(self, from, to, filter)
    }
    fn places(&self) -> Result<Places> {
        Ledger::places(self)
    }
    fn session_cwds(
        &self,
        groups: &[Group],
        places: &HashMap<i64, Place>,
    ) -> Result<HashMap<String, String>> {
        Ledger::session_cwds(self, groups, places)
    }
    fn first_cwds(&self, sessions: &[&str]) -> Result<HashMap<String, String>> {
        Ledger::first_cwds(self, sessions.iter().copied())
    }
    fn session_cwd(&self, session_id: &str) -> Result<Option<String>> {
        Ledger::session_cwd(self, session_id)
    }
    fn session_branch(&self, session_id: &str) -> Result<Option<String>> {
        Ledger::session_branch(self, session_id)
    }
    fn branches(&self, places: &[i64]) -> Result<Vec<String>> {
        Ledger::branches(self, places)
    }
    fn time_span(&self) -> Result<Option<(DateTime<Utc>, DateTime<Utc>)>> {
        Ledger::time_span(self)
    }
    fn skipped_lines(&self) -> Result<u64> {
        Ledger::skipped_lines(self)
    }
    fn history_read(&self) -> Result<bool> {
        Ledger::history_read(self)
    }
    fn halt(&self, session: &str) -> Result<Option<Halt>> {
        Ledger::halt(self, session)
    }
    fn record_halt(&self, session: &str, head: &str, tail: &str, now_ms: i64) -> Result<()> {
        Ledger::record_halt(self, session, head, tail, now_ms)
    }
    fn clear_halt(&self, session: &str) -> Result<()> {
        Ledger::clear_halt(self, session)
    }
    fn notice_given(&self, key: &NoticeKey<'_>) -> Result<bool> {
        Ledger::notice_given(self, key)
    }
    fn record_notice(&self, key: &NoticeKey<'_>, now_ms: i64) -> Result<bool> {
        Ledger::record_notice(self, key, now_ms)
    }
    fn begin_read(&self) -> Result<bool> {
        Ledger::begin_read(self)
    }
    fn end_read(&self) {
        Ledger::end_read(self)
    }
    fn rollup_gen(&self) -> Result<i64> {
        Ledger::rollup_gen(self)
    }
    fn cached_spend(&self, key: i64) -> Result<Option<(i64, Picos)>> {
        Ledger::cached_spend(self, key)
    }
    fn cache_spend(&self, key: i64, upto_ms: i64, picos: Picos, gen: i64) {
        Ledger::cache_spend(self, key, upto_ms, picos, gen)
    }
}
