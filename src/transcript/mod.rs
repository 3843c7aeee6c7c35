//! Claude Code transcripts: where they are ([`discover`]), how a line
//! becomes a costed [`Response`] ([`parse`]) and how a file is read from a
//! byte offset, complete lines only ([`reader`]).

pub mod discover;
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advisor {
    pub model: String,
    pub usage: Usage,
}
