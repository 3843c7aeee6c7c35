//! `octo-budget completions SHELL` and `octo-budget man`: generated from
//! the same clap definitions as the parser, so they never drift from it.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::Result;
use crate::exit;

/// A completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<u8> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "octo-budget", &mut buf);
    let mut out = std::io::stdout().lock();
    out.write_all(&buf)?;
    out.flush()?;
    Ok(exit::OK)
}

/// The man page (roff) on stdout: the command, its global flags and every
/// subcommand with its flags.
pub fn man() -> Result<u8> {
    let cmd = Cli::command();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    // One section per subcommand (and per `hook` action), with its flags.
    for sub in cmd.get_subcommands() {
        render_sub(&mut buf, &format!("octo-budget {}", sub.get_name()), sub)?;
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&buf)?;
    out.flush()?;
    Ok(exit::OK)
}

/// A subcommand's part of the page: a section named after it with its
/// synopsis, description and flags (`.SS` subsections), then its own
/// subcommands (`hook install`, `hook uninstall`).
fn render_sub(buf: &mut Vec<u8>, title: &str, sub: &clap::Command) -> Result<()> {
    let sub = sub.clone().name(title.to_owned());
    let man = clap_mangen::Man::new(sub.clone());
    let mut part = Vec::new();
    man.render_synopsis_section(&mut part)?;
    man.render_description_section(&mut part)?;
    if sub.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut part)?;
    }
    writeln!(buf, ".SH \"{}\"", title.to_uppercase())?;
    for line in String::from_utf8_lossy(&part).lines() {
        // The page's preamble (`.ie`/`.el`) is already at its top.
        if line.starts_with(".ie ") || line.starts_with(".el ") {
            continue;
        }
        match line.strip_prefix(".SH ") {
            Some("SYNOPSIS") => {}
            Some(h) => {
                let h = h.trim_matches('"').to_lowercase();
                let mut c = h.chars();
                let h: String = c
                    .next()
                    .map(|f| f.to_uppercase().chain(c).collect())
                    .unwrap_or_default();
                writeln!(buf, ".SS {h}")?
            }
            None => writeln!(buf, "{line}")?,
        }
    }
    for s in sub.get_subcommands() {
        render_sub(buf, &format!("{title} {}", s.get_name()), s)?;
    }
    Ok(())
}
