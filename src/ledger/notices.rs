//! What has already been said, so each crossing is said once: the hook's
//! warnings (`channel = "hook"`) and the cron job's alerts (`"alerts"`),
//! keyed by scope (arm or total), cap, period start and level.

use rusqlite::{params, OptionalExtension};

use super::{Ledger, Result};

/// One thing that may be said once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeKey<'a> {
    pub channel: &'a str,
    pub scope: &'a str,
    pub cap: &'a str,
    pub period_start: &'a str,
    pub level: &'a str,
}

impl Ledger {
    /// True when `key` was recorded before.
    pub fn notice_given(&self, key: &NoticeKey<'_>) -> Result<bool> {
        let hit: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT 1 FROM notices WHERE channel = ?1 AND scope = ?2 AND cap = ?3 AND period_start = ?4 AND level = ?5",
            )
            .and_then(|mut s| {
                s.query_row(params![key.channel, key.scope, key.cap, key.period_start, key.level], |r| r.get(0))
                    .optional()
            })
            .map_err(|e| self.err(e))?;
        Ok(hit.is_some())
    }

    /// Records `key`; returns false when another process recorded it first
    /// (so exactly one of several concurrent runs says it).
    pub fn record_notice(&self, key: &NoticeKey<'_>, now_ms: i64) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO notices (channel, scope, cap, period_start, level, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| s.execute(params![key.channel, key.scope, key.cap, key.period_start, key.level, now_ms]))
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }
}
