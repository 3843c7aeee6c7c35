//! The binary's one error type: each variant decides its exit code (see
//! `exit`), and its message is the one line a user reads.

use std::io;

use octo_budget::config::ConfigError;
use octo_budget::ledger::LedgerError;

use crate::exit;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A usage mistake clap cannot see (`--since` after `--until`, an
    /// unknown `--arm`, a `--timezone` that is no IANA zone): exit 2, like
    /// clap's own usage errors.
    #[error("{0}")]
    Usage(String),
    /// budgets.yaml is missing, unreadable or invalid: exit 3.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The ledger cannot be opened, read or written: exit 4.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Another file (a transcript, settings.json, stdout) could not be read
    /// or written: exit 5 (a closed stdout ends quietly with 0).
    #[error("{}", io_message(context, source))]
    Io { context: String, source: io::Error },
    /// `check` or `statusline` cannot answer from what it was given (the
    /// input on stdin, a ledger still reading history, no folder to tell
    /// the arm by): `check` refuses the call (or allows it with
    /// `gate.on_error: allow`), `statusline` shows the reason.
    #[error("{0}")]
    Undecided(String),
    /// A bug: exit 70.
    #[error("internal error: {0}")]
    Internal(String),
}

fn io_message(context: &str, source: &io::Error) -> String {
    if context.is_empty() {
        source.to_string()
    } else {
        format!("{context}: {source}")
    }
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<io::Error> for Error {
    fn from(source: io::Error) -> Error {
        Error::Io {
            context: String::new(),
            source,
        }
    }
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Undecided(_) => exit::USAGE,
            Error::Config(_) => exit::CONFIG,
            Error::Ledger(_) => exit::LEDGER,
            Error::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe => exit::OK,
            Error::Io { .. } => exit::IO,
            Error::Internal(_) => exit::INTERNAL,
        }
    }

    /// True when stdout's reader went away (`report | head`): not an
    /// error, nothing is said.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// `.context("cannot read X")` for I/O results.
pub trait IoContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: what(),
            source,
        })
    }
}
