//! Exit codes, in one place. README's "Exit codes" section lists the same.

use std::process::ExitCode;

/// Success (for `check`: the call is allowed).
pub const OK: u8 = 0;
/// `check`: the call is refused. Claude Code treats only 2 as a block.
/// Also clap's code for a usage error (a wrong flag) in every command.
pub const BLOCK: u8 = 2;
/// A usage error: clap's (an unknown flag) and ours (`error::Error::Usage`).
pub const USAGE: u8 = 2;
/// budgets.yaml is missing, unreadable or invalid.
pub const CONFIG: u8 = 3;
/// The ledger cannot be opened, read or written.
pub const LEDGER: u8 = 4;
/// Transcripts or another file could not be read or written.
pub const IO: u8 = 5;
/// `alerts --command`: some events could not be delivered (they are kept
/// and retried on the next run).
pub const DELIVERY: u8 = 6;
/// `status --exit-code`: the arm is at a hard stop (gated tools and
/// prompts would be refused).
pub const BLOCKED: u8 = 7;
/// `status --exit-code`: the agent would be halted (the kill switch).
pub const HALTED: u8 = 8;
/// Anything else that went wrong (a bug: please report it).
pub const INTERNAL: u8 = 70;

pub fn code(c: u8) -> ExitCode {
    ExitCode::from(c)
}
