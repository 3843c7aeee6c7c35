//! Claude Code transcripts: where they are ([`discover`]), how a line
//! becomes a costed [`Response`] ([`parse`]) and how a file is read from a
//! byte offset, complete lines only ([`reader`]).

pub mod discover;
mod fast;
pub mod parse;
pub mod reader;

pub use crate::model::Usage;

/// What one costed record says. A response's identity is
/// (`message_id`, `request_id`); lines without a `message.id` get a
/// synthetic id from their `uuid` (or their place in the file) so each is
/// counted once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub message_id: String,
    /// Empty when the record has no `requestId` (some gateways).
    pub request_id: String,
    pub session_id: Option<String>,
    pub cwd: Option<String>,
    /// The record's `gitBranch` (None when absent or empty: the ingest
    /// gives such a response its session's latest known branch).
    pub branch: Option<String>,
    pub model: String,
    /// Milliseconds since the Unix epoch (UTC).
    pub ts_ms: i64,
    pub sidechain: bool,
    pub fast: bool,
    pub us_geo: bool,
    pub usage: Usage,
    /// `advisor_message` iterations: extra usage billed at their own model.
    pub advisors: Vec<Advisor>,
}

/// A `cost-state` record: Claude Code's own running totals of every
/// request of a session's count (one process run, or several joined by
/// `--resume` / `--fork-session`, which keep `start_ms`), per model. It
/// also counts requests never written as responses (WebSearch's own
/// request, compaction, background requests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostState {
    pub session_id: String,
    /// `startTime`: when the count began (ms since the Unix epoch).
    pub start_ms: i64,
    /// Per model as Claude Code names it, the tokens and web searches.
    pub models: Vec<(String, Usage)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advisor {
    pub model: String,
    pub usage: Usage,
}
