//! `octo-budget hook install|uninstall`: the file work around the
//! settings.json merge of `octo_budget::hook`. The file is written
//! atomically (a temporary file in the same folder, then a rename) with its
//! permissions kept; a file that is not valid JSON is refused, never
//! overwritten.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use octo_budget::hook::{
    command_line, find_own, matcher_for, merge, merge_statusline, remove, remove_statusline,
    render, shell_quote,
};
use serde_json::{json, Value};

use super::Context;
use crate::cli::{HookAction, HookTarget};
use crate::error::{Error, IoContext as _, Result};
use crate::exit;

pub fn run(ctx: &Context, action: &HookAction) -> Result<u8> {
    match action {
        HookAction::Install(t) => install(ctx, t),
        HookAction::Uninstall(t) => uninstall(ctx, t),
    }
}

/// Reads the transcripts already on disk into the ledger, so the first
/// hook call sees the arm's history and answers in milliseconds.
fn warm_ledger(ctx: &Context, loaded: &super::Loaded) -> Result<()> {
    let mut ledger = ctx.open_ledger(&loaded.config, std::time::Duration::from_secs(60))?;
    let s = ctx.ingest_all(loaded, &mut ledger, true)?;
    eprintln!(
        "octo-budget: ledger {} is up to date ({} of {} transcript files read)",
        ledger.path().display(),
        s.files_read,
        s.files_seen
    );
    Ok(())
}

/// Refuses (exit 2) a budgets.yaml that was found in the current folder
/// rather than named by `--config` (or `OCTO_BUDGET_CONFIG`): anyone who
/// can commit to a repository can put one there, and the hook would then
/// enforce it in every session. The user's own config
/// (`$XDG_CONFIG_HOME/octo-budget/budgets.yaml`) is accepted from its own
/// folder too.
fn refuse_config_from_cwd(ctx: &Context) -> Option<u8> {
    if ctx.global.config.is_some() {
        return None;
    }
    let found = ctx.locations.config_path().ok()?;
    let cwd = ctx.env.cwd.as_ref()?;
    if found != cwd.join("budgets.yaml") {
        return None;
    }
    let own = ctx.locations.user_config();
    let same = |a: &Path, b: &Path| matches!((fs::canonicalize(a), fs::canonicalize(b)), (Ok(a), Ok(b)) if a == b);
    if own.as_deref().is_some_and(|own| same(&found, own)) {
        return None;
    }
    let quoted = shell_quote(&found.to_string_lossy());
    eprintln!(
        "octo-budget: hook install: not using {} found in the current folder (a repository's budgets.yaml may have been put there by anyone who can commit to it); if it is the config you mean, name it: octo-budget --config {quoted} hook install ...; nothing was changed",
        found.display()
    );
    Some(exit::BLOCK)
}

fn install(ctx: &Context, target: &HookTarget) -> Result<u8> {
    if let Some(code) = refuse_config_from_cwd(ctx) {
        return Ok(code);
    }
    // The hook must point at a config that loads: a broken one would block
    // every gated call.
    let loaded = ctx.load()?;
    let config_path = canonical(&loaded.config.path, ctx);
    let exe = std::env::current_exe()
        .and_then(fs::canonicalize)
        .context(|| "cannot find the path of the octo-budget binary".into())?;
    let mut args: Vec<String> = vec!["check".into()];
    if !target.no_resident {
        args.push("--resident".into());
    }
    args.push("--config".into());
    args.push(config_path.to_string_lossy().into_owned());
    if let Some(l) = &ctx.global.ledger {
        args.push("--ledger".into());
        match l.to_str().filter(|s| octo_budget::ledger::team::is_uri(s)) {
            // A team ledger's URI as given (it holds no password).
            Some(uri) => args.push(uri.trim().to_owned()),
            None => args.push(canonical(l, ctx).to_string_lossy().into_owned()),
        }
    }
    for d in &ctx.global.claude_dirs {
        args.push("--claude-dir".into());
        args.push(canonical(d, ctx).to_string_lossy().into_owned());
    }
    let command = command_line(&exe.to_string_lossy(), &args);
    let matcher = matcher_for(&loaded.config);
    let path = settings_path(ctx, target)?;
    let Some(before) = read_settings(&path)? else {
        return Ok(exit::IO);
    };
    let halting = loaded.config.can_halt();
    let after = match merge(
        before.clone().unwrap_or_else(|| json!({})),
        &command,
        &matcher,
        halting,
    ) {
        Ok(v) => v,
        Err(e) => return Ok(refuse(&path, &e)),
    };
    // `--statusline`: the same binary and flags, running `statusline`.
    let status_command = command_line(
        &exe.to_string_lossy(),
        &[
            vec!["statusline".into(), "--color".into(), "always".into()],
            args[1..].to_vec(),
        ]
        .concat(),
    );
    let after = match target.statusline {
        true => match merge_statusline(after, &status_command, target.force) {
            Ok(v) => v,
            Err(e) => return Ok(refuse(&path, &e)),
        },
        false => after,
    };
    // Read existing history before the hook exists: its first calls then
    // find a warm ledger instead of waiting on (or doing) a first load, and
    // a ledger that cannot be written stops the install here rather than
    // refusing every gated call later.
    if !target.dry_run {
        warm_ledger(ctx, &loaded)?;
    }
    // Claude Code runs no hook at all while `disableAllHooks` is true:
    // install anyway (removing the key then suffices), but never say
    // "installed" alone.
    let disabled = if after.get("disableAllHooks") == Some(&Value::Bool(true)) {
        format!(
            "; it will NOT run: {} has \"disableAllHooks\": true, so Claude Code runs no hooks until that key is removed",
            path.display()
        )
    } else {
        String::new()
    };
    let verb = match &before {
        Some(b) if render(b) == render(&after) => {
            finish(
                &path,
                None,
                target.dry_run,
                &format!(
                    "already installed in {}; nothing changed{disabled}",
                    path.display()
                ),
            )?;
            return Ok(exit::OK);
        }
        Some(b) if !find_own(b).is_empty() => "updated",
        _ => "installed",
    };
    let mut summary = format!(
        "{verb} octo-budget's hook in {} (PreToolUse matcher {matcher:?}, UserPromptSubmit{}) running: {command}{disabled}",
        path.display(),
        if halting { ", PostToolUse matcher \"*\"" } else { "" }
    );
    if target.statusline {
        summary.push_str(&format!("; statusLine: {status_command}"));
    }
    finish(&path, Some(&after), target.dry_run, &summary)?;
    Ok(exit::OK)
}

fn uninstall(ctx: &Context, target: &HookTarget) -> Result<u8> {
    let path = settings_path(ctx, target)?;
    let Some(before) = read_settings(&path)? else {
        return Ok(exit::IO);
    };
    let Some(before) = before else {
        println!("{} does not exist; nothing to remove", path.display());
        return Ok(exit::OK);
    };
    // `--statusline` removes only the status line; otherwise both go.
    let (after, mut removed) = match target.statusline {
        true => (before, 0),
        false => match remove(before) {
            Ok(r) => r,
            Err(e) => return Ok(refuse(&path, &e)),
        },
    };
    let (after, status_removed) = remove_statusline(after);
    removed += usize::from(status_removed);
    if removed == 0 {
        finish(
            &path,
            None,
            target.dry_run,
            &format!("no octo-budget hook in {}; nothing changed", path.display()),
        )?;
        return Ok(exit::OK);
    }
    let summary = format!(
        "removed {removed} octo-budget hook entr{} from {}",
        if removed == 1 { "y" } else { "ies" },
        path.display()
    );
    finish(&path, Some(&after), target.dry_run, &summary)?;
    Ok(exit::OK)
}

/// Writes `after` (unless a dry run) and prints the summary. A dry run
/// prints the resulting JSON on stdout and the summary on stderr.
fn finish(path: &Path, after: Option<&Value>, dry_run: bool, summary: &str) -> Result<()> {
    if dry_run {
        match after {
            Some(v) => {
                print!("{}", render(v));
                eprintln!("octo-budget: dry run, nothing written; the change: {summary}");
            }
            None => eprintln!("octo-budget: dry run: {summary}"),
        }
        return Ok(());
    }
    if let Some(v) = after {
        write_atomic(path, render(v).as_bytes())?;
    }
    println!("{summary}");
    Ok(())
}

fn refuse(path: &Path, why: &str) -> u8 {
    eprintln!(
        "octo-budget: {}: {why}; nothing was changed (fix or move the file, then run again)",
        path.display()
    );
    exit::IO
}

/// The settings file the flags name, its symlinks followed (see
/// [`follow_links`]).
fn settings_path(ctx: &Context, t: &HookTarget) -> Result<PathBuf> {
    let named = named_settings_path(ctx, t)?;
    follow_links(&named).context(|| format!("cannot resolve {}", named.display()))
}

/// `path` with its symlinks followed to the file they name, also when that
/// file does not exist yet: a dangling link (a dotfiles link whose target
/// is not there yet) names where the settings are to be created, so the
/// link is kept and its target written.
fn follow_links(path: &Path) -> std::io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&p)?;
                p = match p.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            Ok(_) => return fs::canonicalize(&p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Its folder may exist (through links of its own) or not.
                let canonical = match (p.parent(), p.file_name()) {
                    (Some(d), Some(n)) => fs::canonicalize(d).ok().map(|d| d.join(n)),
                    _ => None,
                };
                return Ok(canonical.unwrap_or(p));
            }
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::from_raw_os_error(libc::ELOOP))
}

/// The settings file the flags name: `--settings PATH`, `--project DIR`
/// (DIR/.claude/settings.json) or the user's (the default):
/// `$CLAUDE_CONFIG_DIR/settings.json`, else `~/.claude/settings.json`.
fn named_settings_path(ctx: &Context, t: &HookTarget) -> Result<PathBuf> {
    if let Some(p) = &t.settings {
        return Ok(canonical(p, ctx));
    }
    if let Some(d) = &t.project {
        return Ok(canonical(&d.join(".claude").join("settings.json"), ctx));
    }
    if let Some(d) = &ctx.env.claude_config_dir {
        // Several directories may be listed (comma-separated); the first
        // is the one Claude Code runs with.
        let first = d
            .to_string_lossy()
            .split(',')
            .find(|s| !s.is_empty())
            .map(PathBuf::from);
        if let Some(first) = first {
            return Ok(canonical(&first.join("settings.json"), ctx));
        }
    }
    let home = ctx.env.home.as_ref().ok_or_else(|| {
        Error::Usage("HOME is not set; pass --settings PATH or --project DIR".into())
    })?;
    Ok(home.join(".claude").join("settings.json"))
}

/// `p` absolute, and canonical (symlinks resolved) when it exists.
fn canonical(p: &Path, ctx: &Context) -> PathBuf {
    let joined = ctx.env.cwd.clone().unwrap_or_default().join(p);
    fs::canonicalize(joined).unwrap_or_else(|_| super::absolute(p, ctx))
}

/// What a file that is not a regular file is, for a refusal.
fn kind_of(t: fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a folder")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_char_device() || t.is_block_device() {
        Some("a device")
    } else {
        Some("something else")
    }
}

/// The settings as they are: `Ok(Some(None))` when the file does not exist,
/// `Ok(None)` when it is not a regular file holding a JSON object (already
/// reported on stderr). A FIFO, device, socket or folder is refused before
/// it is opened (reading a FIFO would wait for a writer forever), and the
/// file is opened without blocking and checked again, in case it was
/// swapped in between.
fn read_settings(path: &Path) -> Result<Option<Option<Value>>> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let not_regular = |kind: &str| {
        refuse(
            path,
            &format!(
                "{kind}, not a regular file; settings.json must be a file (or a symlink to one)"
            ),
        );
        Ok(None)
    };
    match fs::metadata(path) {
        Ok(m) => {
            if let Some(kind) = kind_of(m.file_type()) {
                return not_regular(kind);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some(None)),
        Err(e) => return Err(e).context(|| format!("cannot read {}", path.display())),
    }
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path);
    let mut file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some(None)),
        Err(e) => return Err(e).context(|| format!("cannot read {}", path.display())),
    };
    let meta = file
        .metadata()
        .context(|| format!("cannot read {}", path.display()))?;
    if let Some(kind) = kind_of(meta.file_type()) {
        return not_regular(kind);
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .context(|| format!("cannot read {}", path.display()))?;
    if text.trim().is_empty() {
        return Ok(Some(Some(json!({}))));
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => Ok(Some(Some(v))),
        Ok(_) => {
            refuse(path, "not a JSON object");
            Ok(None)
        }
        Err(e) => {
            refuse(path, &format!("not valid JSON ({e})"));
            Ok(None)
        }
    }
}

/// Replaces `path` with `bytes` atomically: a temporary file in the same
/// folder (so the rename cannot cross file systems), flushed to disk, with
/// the old file's permissions (a new file: 0666 less the umask), renamed
/// over it. `path` is the file itself, its symlinks already followed
/// ([`follow_links`]): the target is replaced and the links stay.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).context(|| format!("cannot create {}", dir.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "settings.json".into());
    let old = fs::metadata(path).ok();
    let result = (|| -> std::io::Result<()> {
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".octo-budget.tmp")
            .permissions(fs::Permissions::from_mode(0o666))
            .tempfile_in(dir)?;
        tmp.write_all(bytes)?;
        if let Some(meta) = &old {
            tmp.as_file().set_permissions(meta.permissions())?;
        }
        tmp.as_file().sync_all()?;
        // On failure the temporary file is removed when dropped.
        tmp.persist(path).map_err(|e| e.error)?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.context(|| format!("cannot write {}", path.display()))
}
