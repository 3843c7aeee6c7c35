//! The model the core computes with: token counts ([`Usage`]), the
//! ledger's groups of them ([`Group`]), where they ran ([`Place`]), and
//! money ([`Micros`], [`Picos`], defined in `money`).

use chrono::NaiveDate;

pub use crate::money::{Micros, Picos};
use crate::pricing::PromptClass;

/// Token counts of one response (or one advisor iteration). Field names
/// follow the price table's categories.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub cache_read: u64,
    pub web_search: u64,
}

impl Usage {
    /// Field-wise maximum: how duplicates of one response merge (an early
    /// streaming snapshot carries a placeholder `output_tokens`).
    pub fn max(&self, o: &Usage) -> Usage {
        Usage {
            input: self.input.max(o.input),
            output: self.output.max(o.output),
            cache_write_5m: self.cache_write_5m.max(o.cache_write_5m),
            cache_write_1h: self.cache_write_1h.max(o.cache_write_1h),
            cache_read: self.cache_read.max(o.cache_read),
            web_search: self.web_search.max(o.web_search),
        }
    }

    /// The prompt size the long-context rules look at:
    /// uncached input + cache writes + cache reads.
    pub fn prompt_tokens(&self) -> u64 {
        self.input
            .saturating_add(self.cache_write_5m)
            .saturating_add(self.cache_write_1h)
            .saturating_add(self.cache_read)
    }

    pub fn add(&mut self, o: &Usage) {
        self.input = self.input.saturating_add(o.input);
        self.output = self.output.saturating_add(o.output);
        self.cache_write_5m = self.cache_write_5m.saturating_add(o.cache_write_5m);
        self.cache_write_1h = self.cache_write_1h.saturating_add(o.cache_write_1h);
        self.cache_read = self.cache_read.saturating_add(o.cache_read);
        self.web_search = self.web_search.saturating_add(o.web_search);
    }
}

/// Tokens that share everything pricing and attribution look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub day: NaiveDate,
    pub place_id: i64,
    pub session_id: String,
    /// The git branch ('' for none); always '' unless the filter asked for
    /// branches (`Filter::by_branch` or `Filter::branch` of `ledger::query`).
    pub branch: String,
    pub model: String,
    pub fast: bool,
    pub us_geo: bool,
    pub class: PromptClass,
    /// De-duplicated responses (advisor iterations are not responses).
    pub messages: i64,
    pub usage: Usage,
    /// Requests Claude Code counted in its `cost-state` but never wrote as
    /// responses (`messages` is 0): see `Ledger::unwritten_groups`.
    pub unwritten: bool,
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
