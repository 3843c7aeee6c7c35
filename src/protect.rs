//! Self-protection: `check` refuses tool calls that would change what the
//! budget is decided from, whatever the arm and tier (the agent runs as the
//! same user as the gate):
//!
//! - the config and the ledger (and its `-wal`, `-shm`, `-journal` files),
//!   by absolute, relative, symlinked or hard-linked path;
//! - the folders holding them, and their ancestors below HOME, as a whole
//!   (moved, removed, copied or unpacked into, `find -delete`d);
//! - Claude Code's transcripts: each Claude dir's `projects/` tree (except
//!   its `memory/` folders, which Claude Code's auto memory writes).
//!
//! Bash commands are split into simple commands (at unquoted `;`, `&`,
//! `|`, parentheses, backquotes and newlines) and words (`shlex`). A simple
//! command that names a protected path is refused unless it is one that
//! clearly only reads (`cat`, `less`, `head`, `grep`, ...); output
//! redirected into a protected path is refused whatever the command. This
//! is a guard against accidents and casual edits, not a security boundary
//! (README, "Self-protection, and its limits").

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::config::normalise_path;

const FILE_TOOLS: [&str; 4] = ["Edit", "Write", "MultiEdit", "NotebookEdit"];
/// What SQLite keeps next to the ledger.
const SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Commands that only read the files they name (without output
/// redirection). `find`, `sort` and `git` only without their writing
/// options; see [`only_reads`].
const READERS: &[&str] = &[
    "cat",
    "less",
    "more",
    "head",
    "tail",
    "grep",
    "egrep",
    "fgrep",
    "rg",
    "wc",
    "ls",
    "stat",
    "file",
    "du",
    "df",
    "diff",
    "cmp",
    "md5sum",
    "sha1sum",
    "sha256sum",
    "sha512sum",
    "b2sum",
    "cksum",
    "readlink",
    "realpath",
    "basename",
    "dirname",
    "cd",
    "pushd",
    "popd",
    "pwd",
    "echo",
    "printf",
    "test",
    "[",
    "true",
    "false",
    "jq",
    "nl",
    "od",
    "hexdump",
    "strings",
    "tree",
    "find",
    "sort",
    "git",
];
/// `git` subcommands that only read.
const GIT_READERS: &[&str] = &["status", "log", "diff", "show", "blame", "ls-files", "grep"];
/// `find` actions that write or run something.
const FIND_WRITERS: &[&str] = &[
    "-delete", "-exec", "-execdir", "-ok", "-okdir", "-fprint", "-fprint0", "-fprintf", "-fls",
];

/// What a refused call touched.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hit {
    File(String),
    Folder(String),
    Transcripts(String),
}

/// The paths `check` protects, in the forms a tool call may name them.
pub struct Protected {
    config: PathBuf,
    ledger: PathBuf,
    /// The config and ledger files: absolute, and canonical when different.
    files: Vec<String>,
    /// Their file names, as a shell command may name them from their folder.
    names: Vec<String>,
    /// (device, inode) of those that exist: a hard link is the same file.
    inodes: Vec<(u64, u64)>,
    /// The folders holding them, and ancestors that would take them along.
    folders: Vec<String>,
    /// Only the folders holding them.
    own_folders: Vec<String>,
    /// Each Claude dir's `projects/` (absolute, and canonical).
    transcripts: Vec<String>,
    /// Ancestors of the transcript trees (a Claude dir itself).
    transcript_ancestors: Vec<String>,
    /// HOME, for `~` and `$HOME` in shell words.
    home: Option<String>,
}

impl Protected {
    /// `config` and `ledger` absolute; `transcripts` the `projects/` trees.
    pub fn new(
        config: &Path,
        ledger: &Path,
        transcripts: &[PathBuf],
        home: Option<&Path>,
    ) -> Protected {
        let home = home.map(|h| normalise_path(&h.to_string_lossy()));
        let mut p = Protected {
            config: config.to_path_buf(),
            ledger: ledger.to_path_buf(),
            files: Vec::new(),
            names: Vec::new(),
            inodes: Vec::new(),
            folders: Vec::new(),
            own_folders: Vec::new(),
            transcripts: Vec::new(),
            transcript_ancestors: Vec::new(),
            home: home.clone(),
        };
        for f in [config, ledger] {
            for form in forms(f) {
                if let Some(dir) = Path::new(&form).parent() {
                    let dir = dir.to_string_lossy().into_owned();
                    for a in ancestors_that_count(&dir, home.as_deref()) {
                        push_new(&mut p.folders, a);
                    }
                    push_new(&mut p.own_folders, dir.clone());
                    push_new(&mut p.folders, dir);
                }
                push_new(&mut p.files, form);
            }
            if let Some(n) = f.file_name() {
                push_new(&mut p.names, n.to_string_lossy().into_owned());
            }
            if let Ok(m) = std::fs::metadata(f) {
                p.inodes.push((m.dev(), m.ino()));
            }
        }
        for t in transcripts {
            for form in forms(t) {
                for a in ancestors_that_count(&form, home.as_deref()) {
                    push_new(&mut p.transcript_ancestors, a);
                }
                push_new(&mut p.transcripts, form);
            }
        }
        p
    }

    /// The reason to refuse `tool` with `input`, if it would change a
    /// protected path. `cwd` resolves relative paths.
    pub fn check(
        &self,
        tool: &str,
        input: Option<&serde_json::Value>,
        cwd: Option<&str>,
    ) -> Option<String> {
        let input = input?;
        let hit = if FILE_TOOLS.contains(&tool) {
            let target = ["file_path", "notebook_path", "path"]
                .iter()
                .find_map(|k| input.get(*k).and_then(|v| v.as_str()))?;
            self.file_tool_hit(target, cwd)?
        } else if tool == "Bash" {
            let cmd = input.get("command")?.as_str()?;
            self.bash_hit(cmd, cwd)?
        } else {
            return None;
        };
        Some(self.reason(tool, &hit))
    }

    fn reason(&self, tool: &str, hit: &Hit) -> String {
        match hit {
            Hit::File(t) => format!(
                "octo-budget: {tool} of {t} refused: agents may not change the budget config ({}) or ledger ({}); ask a person to do it",
                self.config.display(),
                self.ledger.display()
            ),
            Hit::Folder(t) => format!(
                "octo-budget: {tool} of {t} refused: agents may not move, remove or write into the folders of the budget config ({}) or ledger ({}); ask a person to do it",
                self.config.display(),
                self.ledger.display()
            ),
            Hit::Transcripts(t) => format!(
                "octo-budget: {tool} of {t} refused: agents may not change Claude Code's transcripts ({}), which spend is counted from; ask a person to do it",
                self.transcripts.first().map(String::as_str).unwrap_or("projects/")
            ),
        }
    }

    fn file_tool_hit(&self, target: &str, cwd: Option<&str>) -> Option<Hit> {
        let abs = match resolve(target, cwd, self.home.as_deref()) {
            Some(a) => a,
            // A relative path with no cwd: its file name is all there is.
            None => {
                let name = Path::new(target)
                    .file_name()?
                    .to_string_lossy()
                    .into_owned();
                return self
                    .names
                    .iter()
                    .any(|n| *n == name || name.starts_with(&format!("{n}-")))
                    .then(|| Hit::File(target.to_owned()));
            }
        };
        if self.is_file(&abs) || self.same_inode(&abs) {
            return Some(Hit::File(abs));
        }
        let canonical = canonical(&abs);
        if canonical.as_deref().is_some_and(|c| self.is_file(c)) {
            return Some(Hit::File(abs));
        }
        if self.in_transcripts(&abs) || canonical.as_deref().is_some_and(|c| self.in_transcripts(c))
        {
            return Some(Hit::Transcripts(abs));
        }
        None
    }

    fn bash_hit(&self, cmd: &str, cwd: Option<&str>) -> Option<Hit> {
        let Some(commands) = simple_commands(cmd) else {
            // Unbalanced quotes: no reliable words; any mention refuses.
            return self
                .files
                .iter()
                .chain(&self.names)
                .chain(&self.transcripts)
                .find(|p| cmd.contains(p.as_str()))
                .map(|p| Hit::File(p.clone()));
        };
        // Where the commands run: the call's cwd, then wherever `cd` went.
        let mut here = cwd.map(normalise_path);
        let mut moved = false;
        // The agent works inside the config's or ledger's folder (a
        // budgets.yaml kept in the repository): that folder's ordinary work
        // is not refused, only the files themselves.
        let works_inside = |dir: Option<&str>| {
            dir.is_some_and(|d| self.own_folders.iter().any(|f| under_or_equal(d, f)))
        };
        let origin_inside = works_inside(here.as_deref());
        for c in &commands {
            let at = Where {
                cwd: here.as_deref(),
                exempt_relative: origin_inside && works_inside(here.as_deref()),
            };
            if let Some(hit) = c.outputs.iter().find_map(|w| self.word_hit(w, at)) {
                return Some(hit);
            }
            let reads = only_reads(&c.words);
            if let Some(hit) = c.words.iter().find_map(|w| self.word_hit(w, at)) {
                if !reads {
                    return Some(hit);
                }
            }
            // After a `cd` into a protected folder, whatever does not only
            // read works on it (`cd ~/.config/octo-budget && tar -xf x.tar`).
            if moved && !reads {
                if let Some(h) = here.as_deref() {
                    if !origin_inside && self.own_folders.iter().any(|f| f == h) {
                        return Some(Hit::Folder(h.to_owned()));
                    }
                    if self.in_transcripts(h) {
                        return Some(Hit::Transcripts(h.to_owned()));
                    }
                }
            }
            if let Some(target) = cd_target(&c.words) {
                here = match target {
                    Some(t) => resolve(t, here.as_deref(), self.home.as_deref()),
                    None => self.home.clone(),
                };
                moved = true;
            }
        }
        None
    }

    /// What a shell word names, if protected.
    fn word_hit(&self, word: &str, at: Where<'_>) -> Option<Hit> {
        let cwd = at.cwd;
        // `--option=PATH`: the path.
        let word = match word.split_once('=') {
            Some((opt, v)) if opt.starts_with('-') => v,
            _ => word,
        };
        if let Some(f) = self
            .files
            .iter()
            .chain(&self.names)
            .find(|p| word.contains(p.as_str()))
        {
            return Some(Hit::File(f.clone()));
        }
        let abs = resolve(word, cwd, self.home.as_deref())?;
        // A glob names what its folder holds.
        let globbed = abs
            .find(['*', '?', '['])
            .map(|i| abs[..i].rsplit_once('/').map_or("/", |(d, _)| d).to_owned());
        let path = globbed.as_deref().unwrap_or(&abs);
        let path = if path.is_empty() { "/" } else { path };
        if self.in_transcripts(path) || self.transcript_ancestors.iter().any(|a| a == path) {
            return Some(Hit::Transcripts(abs));
        }
        let relative = !(word.starts_with('/') || word.starts_with('~') || word.starts_with('$'));
        let inside_folder = at.exempt_relative;
        if !(relative && inside_folder) && self.folders.iter().any(|f| f == path) {
            return Some(Hit::Folder(abs));
        }
        if globbed.is_none() {
            if self.same_inode(&abs) {
                return Some(Hit::File(abs));
            }
            if let Some(c) = canonical(&abs) {
                if self.is_file(&c) {
                    return Some(Hit::File(abs));
                }
                if self.in_transcripts(&c) {
                    return Some(Hit::Transcripts(abs));
                }
                if !(relative && inside_folder) && self.folders.contains(&c) {
                    return Some(Hit::Folder(abs));
                }
            }
        }
        None
    }

    fn is_file(&self, abs: &str) -> bool {
        self.files.iter().any(|f| {
            abs == f
                || abs
                    .strip_prefix(f.as_str())
                    .is_some_and(|rest| SIDECARS.contains(&rest))
        })
    }

    fn same_inode(&self, abs: &str) -> bool {
        !self.inodes.is_empty()
            && std::fs::metadata(abs).is_ok_and(|m| self.inodes.contains(&(m.dev(), m.ino())))
    }

    fn in_transcripts(&self, abs: &str) -> bool {
        self.transcripts.iter().any(|t| {
            under_or_equal(abs, t)
                && !abs[t.len()..]
                    .split('/')
                    .any(|component| component == "memory")
        })
    }
}

/// Where a simple command runs.
#[derive(Debug, Clone, Copy)]
struct Where<'a> {
    cwd: Option<&'a str>,
    /// Relative words are not matched against the protected folders: the
    /// call started inside one (see `bash_hit`).
    exempt_relative: bool,
}

/// For `cd`/`pushd`: Some(target), or Some(None) for HOME.
fn cd_target(words: &[String]) -> Option<Option<&str>> {
    let program = words.first()?;
    if program != "cd" && program != "pushd" {
        return None;
    }
    Some(
        words[1..]
            .iter()
            .map(String::as_str)
            .find(|w| !w.starts_with('-')),
    )
}

/// A path's absolute form and, when different, its canonical form.
fn forms(p: &Path) -> Vec<String> {
    let abs = normalise_path(&p.to_string_lossy());
    let mut out = vec![abs.clone()];
    if let Some(c) = canonical(&abs) {
        if c != abs {
            out.push(c);
        }
    }
    out
}

fn canonical(abs: &str) -> Option<String> {
    std::fs::canonicalize(abs)
        .ok()
        .map(|c| c.to_string_lossy().into_owned())
}

fn push_new(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

fn under_or_equal(p: &str, dir: &str) -> bool {
    p == dir
        || (p.starts_with(dir)
            && (dir.ends_with('/') || p.as_bytes().get(dir.len()) == Some(&b'/')))
}

/// The ancestors of `dir` whose move or removal takes `dir` along and that
/// are specific enough to protect: at least two levels deep, and neither
/// HOME nor one of its ancestors (`cp x ~/` stays allowed).
fn ancestors_that_count(dir: &str, home: Option<&str>) -> Vec<String> {
    Path::new(dir)
        .ancestors()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .filter(|a| a.matches('/').count() >= 2)
        .filter(|a| home.is_none_or(|h| !under_or_equal(h, a)))
        .collect()
}

/// A shell word as an absolute, normalised path: `~` and `$HOME` expanded
/// (when `home` is known), relative words against `cwd`.
fn resolve(word: &str, cwd: Option<&str>, home: Option<&str>) -> Option<String> {
    if word.is_empty() {
        return None;
    }
    let expanded;
    let word = if let Some(h) = home {
        let rest = ["~", "$HOME", "${HOME}"].iter().find_map(|p| {
            word.strip_prefix(p)
                .filter(|r| r.is_empty() || r.starts_with('/'))
        });
        match rest {
            Some(r) => {
                expanded = format!("{h}{r}");
                expanded.as_str()
            }
            None => word,
        }
    } else {
        word
    };
    if word.starts_with('/') {
        Some(normalise_path(word))
    } else if word.starts_with('~') || word.starts_with('$') {
        None
    } else {
        cwd.map(|c| normalise_path(&format!("{c}/{word}")))
    }
}

/// One simple command of a shell line: its words, and the targets of its
/// output redirections.
#[derive(Debug, Default, PartialEq, Eq)]
struct SimpleCommand {
    words: Vec<String>,
    outputs: Vec<String>,
}

#[derive(Debug)]
enum Token {
    Text(String),
    Separator,
    RedirectOut,
    RedirectIn,
}

/// Splits a shell line into simple commands; None when its quotes do not
/// balance. Operators are found outside quotes; the text between them is
/// split into words by `shlex`.
fn simple_commands(line: &str) -> Option<Vec<SimpleCommand>> {
    let mut out = Vec::new();
    let mut current = SimpleCommand::default();
    let mut pending: Option<bool> = None; // Some(true): output target next
    for t in tokens(line)? {
        match t {
            Token::Text(text) => {
                let mut words = shlex::split(&text)?.into_iter();
                if let Some(is_out) = pending.take() {
                    match words.next() {
                        Some(w) if is_out => current.outputs.push(w),
                        _ => {}
                    }
                }
                current.words.extend(words);
            }
            Token::RedirectOut => pending = Some(true),
            Token::RedirectIn => pending = Some(false),
            Token::Separator => {
                pending = None;
                if !current.words.is_empty() || !current.outputs.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
        }
    }
    if !current.words.is_empty() || !current.outputs.is_empty() {
        out.push(current);
    }
    Some(out)
}

fn tokens(line: &str) -> Option<Vec<Token>> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut text = String::new();
    let flush = |text: &mut String, out: &mut Vec<Token>| {
        if !text.trim().is_empty() {
            out.push(Token::Text(std::mem::take(text)));
        }
        text.clear();
    };
    let (mut single, mut double) = (false, false);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if single {
            text.push(c);
            single = c != '\'';
        } else if double {
            text.push(c);
            if c == '\\' {
                if let Some(n) = next {
                    text.push(n);
                    i += 1;
                }
            } else if c == '"' {
                double = false;
            }
        } else {
            match c {
                '\\' => {
                    text.push(c);
                    if let Some(n) = next {
                        text.push(n);
                        i += 1;
                    }
                }
                '\'' => {
                    single = true;
                    text.push(c);
                }
                '"' => {
                    double = true;
                    text.push(c);
                }
                '>' => {
                    flush(&mut text, &mut out);
                    while matches!(chars.get(i + 1), Some('>' | '|' | '&')) {
                        i += 1;
                    }
                    out.push(Token::RedirectOut);
                }
                '<' => {
                    flush(&mut text, &mut out);
                    if next == Some('>') {
                        i += 1;
                        out.push(Token::RedirectOut);
                    } else {
                        while matches!(chars.get(i + 1), Some('<' | '&')) {
                            i += 1;
                        }
                        out.push(Token::RedirectIn);
                    }
                }
                '&' if next == Some('>') => {
                    flush(&mut text, &mut out);
                    i += 1;
                    if chars.get(i + 1) == Some(&'>') {
                        i += 1;
                    }
                    out.push(Token::RedirectOut);
                }
                ';' | '&' | '|' | '(' | ')' | '\n' | '`' | '{' | '}' => {
                    flush(&mut text, &mut out);
                    out.push(Token::Separator);
                }
                _ => text.push(c),
            }
        }
        i += 1;
    }
    if single || double {
        return None;
    }
    flush(&mut text, &mut out);
    Some(out)
}

/// True when a simple command clearly only reads: a command of
/// [`READERS`] (after `NAME=value` assignments), with no command or
/// process substitution in its words; `find` without actions that write
/// or run, `sort` without `-o`, `git` with a reading subcommand.
fn only_reads(words: &[String]) -> bool {
    let mut rest = words
        .iter()
        .skip_while(|w| {
            w.split_once('=').is_some_and(|(n, _)| {
                !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        })
        .map(String::as_str);
    let Some(program) = rest.next() else {
        return true;
    };
    let args: Vec<&str> = rest.collect();
    if args
        .iter()
        .chain(std::iter::once(&program))
        .any(|w| w.contains("$(") || w.contains('`') || w.contains(">(") || w.contains("<("))
    {
        return false;
    }
    let name = program.rsplit('/').next().unwrap_or(program);
    if !READERS.contains(&name) {
        return false;
    }
    match name {
        "find" => !args.iter().any(|a| FIND_WRITERS.contains(a)),
        "sort" => !args
            .iter()
            .any(|a| a.starts_with("-o") || a.starts_with("--output")),
        "git" => {
            !args.iter().any(|a| a.starts_with("--output"))
                && args
                    .iter()
                    .find(|a| !a.starts_with('-'))
                    .is_some_and(|sub| GIT_READERS.contains(sub))
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CFG: &str = "/home/u/.config/octo-budget/budgets.yaml";
    const LED: &str = "/home/u/.local/share/octo-budget/ledger.sqlite";
    const PROJECTS: &str = "/home/u/.claude/projects";

    fn protected() -> Protected {
        Protected::new(
            Path::new(CFG),
            Path::new(LED),
            &[PathBuf::from(PROJECTS)],
            Some(Path::new("/home/u")),
        )
    }

    fn bash(c: &str) -> Option<String> {
        protected().check("Bash", Some(&json!({ "command": c })), Some("/home/u/proj"))
    }

    fn edit(p: &str, cwd: Option<&str>) -> Option<String> {
        protected().check("Edit", Some(&json!({ "file_path": p })), cwd)
    }

    #[test]
    fn file_tools_on_config_ledger_and_transcripts_are_refused() {
        assert!(edit(CFG, None).is_some());
        assert!(edit("budgets.yaml", Some("/home/u/.config/octo-budget")).is_some());
        assert!(edit(&format!("{LED}-wal"), None).is_some());
        assert!(edit("../.config/octo-budget/budgets.yaml", Some("/home/u/proj")).is_some());
        assert!(edit(&format!("{PROJECTS}/-home-u-proj/s1.jsonl"), None).is_some());
        assert!(edit(
            &format!("{PROJECTS}/-home-u-proj/s1/subagents/agent-a.jsonl"),
            None
        )
        .is_some());
        // Claude Code's auto memory lives under projects/ too.
        assert!(edit(&format!("{PROJECTS}/-home-u-proj/memory/MEMORY.md"), None).is_none());
        assert!(edit("/home/u/proj/src/main.rs", None).is_none());
        assert!(edit("/home/u/.config/octo-budget/notes.md", None).is_none());
        assert!(protected()
            .check("Read", Some(&json!({ "file_path": CFG })), None)
            .is_none());
    }

    #[test]
    fn shell_words_split_at_operators_outside_quotes() {
        let c = simple_commands("cat a 'b;c' | grep -E 'x|y' > out 2>&1 && rm -f \"d e\"").unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].words, ["cat", "a", "b;c"]);
        assert_eq!(c[1].words, ["grep", "-E", "x|y", "2"]);
        assert_eq!(c[1].outputs, ["out", "1"]);
        assert_eq!(c[2].words, ["rm", "-f", "d e"]);
        assert!(simple_commands("echo 'unbalanced").is_none());
    }

    #[test]
    fn bash_writes_are_refused_and_reads_allowed() {
        for c in [
            "sed -i s/1000/9999/ budgets.yaml",
            "rm /home/u/.local/share/octo-budget/ledger.sqlite",
            "echo 'budgets: []' > ~/.config/octo-budget/budgets.yaml",
            "cat /tmp/x >> $HOME/.config/octo-budget/budgets.yaml",
            "cat budgets.yaml | tee budgets.yaml",
            "sqlite3 ledger.sqlite 'DELETE FROM responses'",
            "find ~/.config/octo-budget -name '*.yaml' -delete",
            "python3 - <<'EOF'\nopen('/home/u/.config/octo-budget/budgets.yaml','w')\nEOF",
            "cat \"$(rm budgets.yaml)\"",
        ] {
            assert!(bash(c).is_some(), "{c}");
        }
        for c in [
            "cat ~/.config/octo-budget/budgets.yaml",
            "cat /home/u/.config/octo-budget/budgets.yaml | grep cap",
            "grep -n monthly_usd_cap budgets.yaml",
            "head -5 budgets.yaml > /tmp/head.txt",
            "wc -l ~/.claude/projects/-home-u-proj/*.jsonl",
            "ls -la ~/.local/share/octo-budget",
            "git diff budgets.yaml",
            "cargo test",
            "cp x ~/",
            "cd ~/.config/octo-budget && cat budgets.yaml | grep cap",
            "cd /home/u/other && make",
            "cd && ls",
        ] {
            assert!(bash(c).is_none(), "{c}");
        }
    }

    #[test]
    fn folders_hardlinks_and_transcripts_are_covered() {
        for c in [
            "cp -r /tmp/evil/. ~/.config/octo-budget",
            "cp -r /tmp/evil/octo-budget /home/u/.config/",
            "rsync -a /tmp/evil/ ~/.config/octo-budget/",
            "tar -C ~/.local/share/octo-budget -xf /tmp/x.tar",
            "mv ~/.config/octo-budget /tmp/gone",
            "rm -rf /home/u/.local/share/octo-budget",
            "rm -rf ~/.local/share",
            "rm ~/.config/octo-budget/*",
            "ln /home/u/.config/octo-budget/budgets.yaml /tmp/link",
            "sed -i s/a/b/ ~/.claude/projects/-home-u-proj/s1.jsonl",
            "rm -rf ~/.claude/projects",
            "mv ~/.claude /tmp/c",
            "cp /tmp/fake.jsonl /home/u/.claude/projects/-home-u-proj/",
            "tar -C /home/u/.claude -xf t.tar",
            "cd ~/.config/octo-budget && cp /tmp/x *.yaml",
            "cd /home/u/.local/share/octo-budget; tar -xf /tmp/x.tar",
            "cd ~/.claude/projects/-home-u-proj && rm -f *",
            "cd ~/.config && rm -rf octo-budget",
        ] {
            assert!(bash(c).is_some(), "{c}");
        }
    }

    #[test]
    fn a_config_kept_in_the_working_folder_protects_only_its_files() {
        let p = Protected::new(
            Path::new("/x/acme/budgets.yaml"),
            Path::new(LED),
            &[PathBuf::from(PROJECTS)],
            Some(Path::new("/home/u")),
        );
        let bash = |c: &str| p.check("Bash", Some(&json!({ "command": c })), Some("/x/acme"));
        for c in [
            "git add . && git commit -m wip",
            "cd /x/acme && cargo test",
            "cp -r src/. .",
            "rm -rf target",
        ] {
            assert!(bash(c).is_none(), "{c}");
        }
        for c in [
            "rm budgets.yaml",
            "cd /x/acme && sed -i s/1/2/ budgets.yaml",
            "mv /x/acme /tmp/a",
        ] {
            assert!(bash(c).is_some(), "{c}");
        }
    }

    #[test]
    fn a_hard_link_is_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("conf").join("budgets.yaml");
        std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
        std::fs::write(&cfg, "x").unwrap();
        let link = dir.path().join("innocent.txt");
        std::fs::hard_link(&cfg, &link).unwrap();
        let p = Protected::new(&cfg, &dir.path().join("l/ledger.sqlite"), &[], None);
        let w = json!({ "file_path": link });
        assert!(p.check("Write", Some(&w), None).is_some());
        let b = json!({ "command": format!("echo x >> {}", link.display()) });
        assert!(p.check("Bash", Some(&b), None).is_some());
        let other = json!({ "file_path": dir.path().join("other.txt") });
        assert!(p.check("Write", Some(&other), None).is_none());
    }
}
