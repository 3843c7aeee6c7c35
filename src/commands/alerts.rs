//! `octo-budget alerts` (being written).

use anyhow::{bail, Result};

use super::Context;
use crate::cli::AlertsArgs;

pub fn run(_ctx: &Context, _args: &AlertsArgs) -> Result<u8> {
    bail!("alerts is not available in this build yet")
}
