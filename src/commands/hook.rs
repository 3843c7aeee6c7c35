//! `octo-budget hook install|uninstall` (being written).

use anyhow::{bail, Result};

use super::Context;
use crate::cli::HookAction;

pub fn run(_ctx: &Context, _action: &HookAction) -> Result<u8> {
    bail!("hook install is not available in this build yet")
}
