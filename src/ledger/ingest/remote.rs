//! A team ledger's server's rows, merged into this machine's ledger by
//! the same writer as rows read from transcripts (see [`crate::ledger::team`]).

use super::writer::Writer;
use crate::ledger::{Ledger, Result};
use crate::transcript::Usage;

/// A response as a team ledger's server holds it (see [`super::team`]).
#[derive(Debug, Clone)]
pub struct RemoteResponse {
    pub message_id: String,
    pub request_id: String,
    pub session_id: String,
    pub cwd: String,
    pub project: String,
    pub model: String,
    pub ts_ms: i64,
    pub branch: String,
    pub sidechain: bool,
    pub fast: bool,
    pub us_geo: bool,
    pub advisor: bool,
    pub usage: Usage,
}

/// A session's first cwd as a team ledger's server holds it.
#[derive(Debug, Clone)]
pub struct RemoteSession {
    pub session_id: String,
    pub cwd: String,
    pub first_ts: i64,
}

/// One model's totals of a `cost-state` record as a team ledger's server
/// holds them.
#[derive(Debug, Clone)]
pub struct RemoteCost {
    pub session_id: String,
    pub start_ms: i64,
    pub model: String,
    pub end_ms: i64,
    pub cwd: String,
    pub project: String,
    pub usage: Usage,
}

/// What a team ledger's sync moves, either way.
#[derive(Debug, Clone, Default)]
pub struct RemoteBatch {
    pub responses: Vec<RemoteResponse>,
    pub sessions: Vec<RemoteSession>,
    pub costs: Vec<RemoteCost>,
    /// Sessions sharing a response (a fork's copies), one way each.
    pub links: Vec<(String, String)>,
}

impl RemoteBatch {
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn len(&self) -> usize {
        self.responses.len() + self.sessions.len() + self.costs.len() + self.links.len()
    }
}

/// Merges rows from a team ledger's server into this ledger exactly as
/// rows read from transcripts are merged (maximum per field, the rollup in
/// step, sidechain copies not counted twice, the unwritten parts of
/// cost-states computed again), inside the transaction the caller holds
/// open.
pub(crate) fn apply_remote(ledger: &mut Ledger, batch: RemoteBatch) -> Result<()> {
    Writer::new(ledger).apply_remote(batch)
}
