//! Sessions the kill switch has halted. A halt is recorded with its reason
//! the first time `check` halts a session; every later call of that session
//! (the parent's or a subagent's: both carry the parent's session id) is
//! halted with the same reason, even when the spend that caused it has
//! moved out of its window (the burn rate's trailing hour), until a prompt
//! of the session passes the check and clears it.

use rusqlite::{params, OptionalExtension};

use super::{Ledger, Result};

/// A recorded halt: the reason is `head`, what was refused, then `tail`
/// (see `output::hook_reply::halt_reason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Halt {
    pub head: String,
    pub tail: String,
    pub created_ms: i64,
}

impl Ledger {
    /// The halt recorded for `session`, if any.
    pub fn halt(&self, session: &str) -> Result<Option<Halt>> {
        self.conn
            .prepare_cached("SELECT head, tail, created_ms FROM halts WHERE session_id = ?1")
            .and_then(|mut s| {
                s.query_row(params![session], |r| {
                    Ok(Halt {
                        head: r.get(0)?,
                        tail: r.get(1)?,
                        created_ms: r.get(2)?,
                    })
                })
                .optional()
            })
            .map_err(|e| self.err(e))
    }

    /// Records a halt of `session`; the first one recorded is kept (calls
    /// of one batch run at once and may all halt).
    pub fn record_halt(&self, session: &str, head: &str, tail: &str, now_ms: i64) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO halts (session_id, head, tail, created_ms) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![session, head, tail, now_ms]))
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Clears the halt of `session` (a prompt passed the check).
    pub fn clear_halt(&self, session: &str) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM halts WHERE session_id = ?1")
            .and_then(|mut s| s.execute(params![session]))
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}
