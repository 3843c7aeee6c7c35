//! Loading budgets.yaml: bounded reading, parsing into the schema, and
//! validation with errors that name file, line and key. Paths in the file
//! are expanded (`~`, `$HOME`, relative to the file) and normalised.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;

use super::schema::*;
use super::*;
use crate::money::Micros;

/// What config loading needs from the environment (read in `cli`).
#[derive(Debug, Clone, Default)]
pub struct PathContext {
    pub home: Option<PathBuf>,
    /// The zone used when the file names none (the system's).
    pub local_zone: Option<Tz>,
}

impl PathContext {
    /// `~`, `~/x`, `$HOME/x` and `${HOME}/x` expanded; relative paths are
    /// taken from `base` (the config file's folder); the result is
    /// normalised (no `.`, `..`, `//` or trailing `/`).
    pub fn expand(&self, raw: &str, base: &Path) -> String {
        let raw = raw.trim();
        let home = self.home.as_ref().map(|h| h.to_string_lossy().into_owned());
        let expanded = match home {
            Some(h) if raw == "~" || raw == "$HOME" || raw == "${HOME}" => h,
            Some(h) if raw.starts_with("~/") => format!("{h}/{}", &raw[2..]),
            Some(h) if raw.starts_with("$HOME/") => format!("{h}/{}", &raw[6..]),
            Some(h) if raw.starts_with("${HOME}/") => format!("{h}/{}", &raw[8..]),
            _ => raw.to_owned(),
        };
        let abs = if expanded.starts_with('/') {
            expanded
        } else {
            format!("{}/{}", base.to_string_lossy(), expanded)
        };
        normalise_path(&abs)
    }

    /// The ledger that `ledger: raw` names in a file in folder `base`: a
    /// team ledger's URI as written (without a password), else the path
    /// expanded as [`PathContext::expand`] does.
    pub fn ledger_setting(&self, raw: &str, base: &Path) -> PathBuf {
        if crate::ledger::team::is_uri(raw) {
            PathBuf::from(raw.trim())
        } else {
            PathBuf::from(self.expand(raw, base))
        }
    }
}

/// The folder of the config file at `path`, absolute: what relative paths
/// in it are relative to.
pub fn folder_of(path: &Path) -> PathBuf {
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };
    std::path::absolute(&base).unwrap_or(base)
}

/// Lexical normalisation of an absolute path.
pub fn normalise_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

impl Config {
    pub fn load(path: &Path, ctx: &PathContext) -> Result<Config, ConfigError> {
        let text = read_bounded(path)?;
        Config::parse(&text, path, ctx)
    }

    pub fn parse(text: &str, path: &Path, ctx: &PathContext) -> Result<Config, ConfigError> {
        // A UTF-8 byte order mark (some Windows editors write one) is not
        // part of the document.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let syntax = |message: String| ConfigError::Syntax {
            path: path.to_path_buf(),
            message,
        };
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(syntax(too_large(text.len() as u64)));
        }
        check_flow_depth(text).map_err(syntax)?;
        let raw: RawFile = if text.trim().is_empty() {
            RawFile::default()
        } else {
            serde_path_to_error::deserialize::<_, Option<RawFile>>(
                serde_yaml_ng::Deserializer::from_str(text),
            )
            .map_err(|e| serde_error(path, text, e))?
            .unwrap_or_default()
        };
        if raw.is_empty() {
            return Err(syntax(
                "holds no settings (empty, only comments or `---`): refusing to run without budgets, \
                 as an empty or truncated budgets.yaml must not turn the budgets off"
                    .into(),
            ));
        }
        let v = Validator { path, text };
        let base = folder_of(path);

        let mut notices = Vec::new();
        if raw.spend_json.is_some() {
            notices.push(format!(
                "{}: `spend_json` (Octorato) is accepted and ignored: octo-budget keeps spend in its ledger",
                path.display()
            ));
        }
        let timezone = match &raw.timezone {
            Some(name) => name.parse::<Tz>().map_err(|_| {
                let best = nearest(
                    name,
                    &chrono_tz::TZ_VARIANTS
                        .iter()
                        .map(|t| t.name())
                        .collect::<Vec<_>>(),
                );
                v.error(
                    &[Seg::Key("timezone")],
                    format!("unknown IANA time zone {name:?}{}", did_you_mean(best)),
                )
            })?,
            None => ctx.local_zone.unwrap_or(Tz::UTC),
        };

        let default = raw.default.clone().unwrap_or_default();
        v.limits(&[Seg::Key("default")], &default)?;
        let mut arms: Vec<Arm> = Vec::new();
        // Names and paths seen so far, for duplicates in O(1) each: a config
        // of 20,000 arms validates in linear time.
        let mut names: HashSet<String> = HashSet::new();
        let mut owners: HashMap<String, usize> = HashMap::new();
        for (i, a) in raw.budgets.iter().flatten().enumerate() {
            let at = |k: &'static str| [Seg::Key("budgets"), Seg::Index(i), Seg::Key(k)];
            let name = a.arm.trim().to_owned();
            if name.is_empty() {
                return Err(v.error(&at("arm"), "an arm needs a name".into()));
            }
            if !names.insert(name.clone()) {
                return Err(v.error(&at("arm"), format!("duplicate arm {name:?}")));
            }
            let limits = a.limits();
            v.limits(&[Seg::Key("budgets"), Seg::Index(i)], &limits)?;
            let merged = limits.or(&default);
            let mut paths = Vec::new();
            let mut raw_paths: Vec<(&'static str, &String)> =
                a.path.iter().map(|p| ("path", p)).collect();
            raw_paths.extend(a.paths.iter().flatten().map(|p| ("paths", p)));
            for (key, p) in raw_paths {
                if p.trim().is_empty() {
                    return Err(v.error(&at(key), "empty path".into()));
                }
                let norm = ctx.expand(p, &base);
                match owners.get(&norm) {
                    Some(&o) if o == i => {} // the same path twice in one arm
                    Some(&o) => {
                        return Err(v.error(
                            &at(key),
                            format!("path {norm} is already arm {:?}'s", arms[o].name),
                        ));
                    }
                    None => {
                        owners.insert(norm.clone(), i);
                        paths.push(norm);
                    }
                }
            }
            // The arm's own `branch_caps` replace the default's.
            let branch_caps = match (&a.branch_caps, &default.branch_caps) {
                (Some(m), _) => v.branch_caps(&[Seg::Key("budgets"), Seg::Index(i)], m)?,
                (None, Some(m)) => v.branch_caps(&[Seg::Key("default")], m)?,
                (None, None) => Vec::new(),
            };
            arms.push(Arm {
                name,
                paths,
                caps: merged.caps(),
                policy: merged.policy(),
                branch_caps,
            });
        }
        let total = match &raw.total {
            Some(t) => {
                v.limits(&[Seg::Key("total")], t)?;
                let per_arm = [
                    ("session_usd_cap", t.session_usd_cap.is_some()),
                    ("max_usd_per_hour", t.max_usd_per_hour.is_some()),
                    ("branch_usd_cap", t.branch_usd_cap.is_some()),
                    ("branch_caps", t.branch_caps.is_some()),
                ];
                if let Some((key, _)) = per_arm.iter().find(|(_, set)| *set) {
                    let key = *key;
                    return Err(v.error(
                        &[Seg::Key("total"), Seg::Key(key)],
                        "the team total takes monthly_usd_cap, weekly_usd_cap and daily_usd_cap"
                            .into(),
                    ));
                }
                Some(Total {
                    caps: t.caps(),
                    policy: t.policy(),
                })
            }
            None => None,
        };
        // Nothing to enforce is not a valid config: a file cut short before
        // its `budgets:` must not disarm the gate. Arms without caps are
        // fine (spend is reported per arm); so is a `total:` cap alone.
        if arms.is_empty() && total.as_ref().is_none_or(|t| t.caps == Caps::default()) {
            const WHY: &str = "no arm and no `total:` cap: nothing to enforce; refusing to run \
                without budgets (list arms under `budgets:` or set a `total:` cap)";
            return Err(if raw.budgets.is_some() {
                v.error(&[Seg::Key("budgets")], WHY.into())
            } else if raw.total.is_some() {
                v.error(&[Seg::Key("total")], WHY.into())
            } else {
                syntax(WHY.into())
            });
        }
        let gate = match &raw.gate {
            Some(g) => {
                let tools = g
                    .tools
                    .clone()
                    .unwrap_or_else(|| DEFAULT_GATED_TOOLS.iter().map(|s| s.to_string()).collect());
                for (i, t) in tools.iter().enumerate() {
                    if t.trim().is_empty() || tool_pattern(t).is_none() {
                        return Err(v.error(
                            &[Seg::Key("gate"), Seg::Key("tools"), Seg::Index(i)],
                            format!("{t:?} is not a tool name or a * pattern"),
                        ));
                    }
                }
                Gate {
                    tools,
                    on_error: g.on_error.unwrap_or_default(),
                }
            }
            None => Gate {
                tools: DEFAULT_GATED_TOOLS.iter().map(|s| s.to_string()).collect(),
                on_error: OnError::Deny,
            },
        };
        let alerts = match &raw.alerts {
            Some(a) => {
                let at = |k: &'static str| [Seg::Key("alerts"), Seg::Key(k)];
                let d = AlertSettings::default();
                for (k, val) in [
                    ("spike_mad", a.spike_mad),
                    ("spike_min_usd", a.spike_min_usd),
                    ("unattributed_pct", a.unattributed_pct),
                    ("unattributed_min_usd", a.unattributed_min_usd),
                ] {
                    v.non_negative(&at(k), val)?;
                }
                AlertSettings {
                    spike_mad: a.spike_mad.unwrap_or(d.spike_mad),
                    spike_min: a
                        .spike_min_usd
                        .map(Micros::from_f64_dollars)
                        .unwrap_or(d.spike_min),
                    unattributed_pct: a
                        .unattributed_pct
                        .map(|p| p.round() as u32)
                        .unwrap_or(d.unattributed_pct),
                    unattributed_min: a
                        .unattributed_min_usd
                        .map(Micros::from_f64_dollars)
                        .unwrap_or(d.unattributed_min),
                }
            }
            None => AlertSettings::default(),
        };
        let mut prices = Vec::new();
        for (model, row) in raw.prices.iter().flatten() {
            row.validate()
                .map_err(|m| v.error(&[Seg::Key("prices"), Seg::Name(model)], m))?;
            prices.push((model.clone(), row.clone()));
        }
        let claude_dirs = raw
            .claude_dirs
            .iter()
            .flatten()
            .map(|d| PathBuf::from(ctx.expand(d, &base)))
            .collect();
        let ledger = match raw.ledger.as_deref() {
            Some(l) if crate::ledger::team::is_uri(l) => {
                if let Err(e) = crate::ledger::team::TeamUri::parse(l) {
                    return Err(v.error(&[Seg::Key("ledger")], e));
                }
                Some(ctx.ledger_setting(l, &base))
            }
            l => l.map(|l| ctx.ledger_setting(l, &base)),
        };
        let trunk_branches = match &raw.trunk_branches {
            Some(list) => {
                for (i, b) in list.iter().enumerate() {
                    if b.trim().is_empty() {
                        return Err(v.error(
                            &[Seg::Key("trunk_branches"), Seg::Index(i)],
                            "an empty branch name".into(),
                        ));
                    }
                }
                list.clone()
            }
            None => DEFAULT_TRUNK_BRANCHES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        };
        Ok(Config {
            path: path.to_path_buf(),
            timezone,
            arms,
            total,
            gate,
            alerts,
            prices,
            claude_dirs,
            ledger,
            trunk_branches,
            notices,
        })
    }

    /// No arms and every default: for reading the ledger before any
    /// budgets.yaml exists (`init`). Loading a file never gives this: a
    /// file with nothing to enforce is refused.
    pub fn unconfigured(path: &Path, ctx: &PathContext) -> Config {
        Config {
            path: path.to_path_buf(),
            timezone: ctx.local_zone.unwrap_or(Tz::UTC),
            arms: Vec::new(),
            total: None,
            gate: Gate {
                tools: DEFAULT_GATED_TOOLS.iter().map(|s| s.to_string()).collect(),
                on_error: OnError::Deny,
            },
            alerts: AlertSettings::default(),
            prices: Vec::new(),
            claude_dirs: Vec::new(),
            ledger: None,
            trunk_branches: DEFAULT_TRUNK_BRANCHES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            notices: Vec::new(),
        }
    }

    pub fn arm(&self, name: &str) -> Option<&Arm> {
        self.arms.iter().find(|a| a.name == name)
    }

    /// True when some arm or the total can halt the agent (see
    /// [`can_halt`]): `check` must then see every tool call.
    pub fn can_halt(&self) -> bool {
        self.arms.iter().any(Arm::can_halt)
            || self
                .total
                .as_ref()
                .is_some_and(|t| can_halt(&t.caps, &t.policy))
    }
}

/// The largest budgets.yaml read: 4 MiB, about 60,000 arms written out.
/// A bigger file (or `/dev/zero`) is refused before it is read.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;
/// The deepest `[`/`{` nesting accepted. budgets.yaml needs 3; the YAML
/// parser takes quadratic time on deep flow nesting (a 200 KB file of
/// brackets took 50 s).
pub const MAX_FLOW_DEPTH: usize = 32;
/// The largest dollar amount a cap or alert threshold may have: $1e9.
/// Times the largest grace (1000 %) it is still far inside `i64`
/// micro-dollars, so no hard-stop amount can overflow.
pub const MAX_USD: f64 = 1e9;

fn too_large(bytes: u64) -> String {
    format!("{bytes} bytes is larger than the {MAX_CONFIG_BYTES} bytes a budgets.yaml may have")
}

/// Reads budgets.yaml: a regular file (or a symlink to one) of at most
/// [`MAX_CONFIG_BYTES`]. A FIFO, a device, a socket or a folder is refused
/// without reading from it (a FIFO would block, `/dev/zero` never ends and
/// `/dev/null` reads as an empty file).
pub fn read_bounded(path: &Path) -> Result<String, ConfigError> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let io = |error: std::io::Error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    };
    let refuse = |message: String| ConfigError::Syntax {
        path: path.to_path_buf(),
        message,
    };
    let regular = |meta: &std::fs::Metadata| -> Result<(), ConfigError> {
        let t = meta.file_type();
        let what = if t.is_file() {
            return Ok(());
        } else if t.is_dir() {
            "a folder"
        } else if t.is_fifo() {
            "a FIFO"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else if t.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        Err(refuse(format!(
            "is {what}: budgets.yaml must be a regular file"
        )))
    };
    regular(&std::fs::metadata(path).map_err(io)?)?;
    // O_NONBLOCK: should a FIFO replace the file after the check above,
    // opening it does not wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    regular(&meta)?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(refuse(too_large(meta.len())));
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(refuse(too_large(bytes.len() as u64)));
    }
    String::from_utf8(bytes).map_err(|_| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not UTF-8 text",
        ))
    })
}

/// Refuses `[`/`{` nesting deeper than [`MAX_FLOW_DEPTH`] before the YAML
/// parser sees it. Brackets inside quotes and comments do not count; the
/// scan is conservative (a bracket in a block scalar counts too).
fn check_flow_depth(text: &str) -> Result<(), String> {
    let (mut depth, mut line) = (0usize, 1usize);
    let mut quote: Option<u8> = None;
    let mut prev = b'\n';
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) => {
                if b == b'\\' && q == b'"' {
                    i += 1; // the escaped character
                } else if b == q {
                    if q == b'\'' && bytes.get(i + 1) == Some(&b'\'') {
                        i += 1; // '' inside '...'
                    } else {
                        quote = None;
                    }
                }
            }
            None => match b {
                b'#' if prev.is_ascii_whitespace() => {
                    while i + 1 < bytes.len() && bytes[i + 1] != b'\n' {
                        i += 1;
                    }
                }
                // A quote opens a quoted scalar only where a scalar starts.
                b'"' | b'\''
                    if matches!(
                        prev,
                        b' ' | b'\t' | b'\n' | b'[' | b'{' | b',' | b':' | b'-'
                    ) =>
                {
                    quote = Some(b)
                }
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_FLOW_DEPTH {
                        return Err(format!(
                            "line {line}: nested deeper than {MAX_FLOW_DEPTH} levels of [ ] or {{ }}; budgets.yaml needs at most 3"
                        ));
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        // (An escape may have stepped past the end.)
        if let Some(&c) = bytes.get(i) {
            if c == b'\n' {
                line += 1;
            }
            prev = c;
        }
        i += 1;
    }
    Ok(())
}

// ---- Errors with places ------------------------------------------------------

/// A step of a key path: `budgets`, `[2]`, `arm`.
#[derive(Debug, Clone, Copy)]
enum Seg<'a> {
    Key(&'static str),
    Name(&'a str),
    Index(usize),
}

impl fmt::Display for Seg<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seg::Key(k) => f.write_str(k),
            Seg::Name(k) => f.write_str(k),
            Seg::Index(i) => write!(f, "[{i}]"),
        }
    }
}

fn key_path(segs: &[Seg<'_>]) -> String {
    let mut s = String::new();
    for seg in segs {
        if !s.is_empty() && !matches!(seg, Seg::Index(_)) {
            s.push('.');
        }
        s.push_str(&seg.to_string());
    }
    s
}

struct Validator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Validator<'_> {
    fn error(&self, at: &[Seg<'_>], message: String) -> ConfigError {
        let (line, column) = locate(self.text, at);
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line,
            column,
            key: key_path(at),
            message,
        }
    }

    fn non_negative(&self, at: &[Seg<'_>], v: Option<f64>) -> Result<(), ConfigError> {
        match v {
            Some(x) if !x.is_finite() || x < 0.0 => {
                Err(self.error(at, format!("must be a non-negative number, not {x}")))
            }
            Some(x) if x > MAX_USD => Err(self.error(
                at,
                format!("{x} is larger than any amount octo-budget handles (at most {MAX_USD:e})"),
            )),
            _ => Ok(()),
        }
    }

    /// `branch_caps:`: a mapping of non-empty branch globs to amounts.
    fn branch_caps(
        &self,
        at: &[Seg<'_>],
        m: &serde_yaml_ng::Mapping,
    ) -> Result<Vec<BranchCap>, ConfigError> {
        let mut here = at.to_vec();
        here.push(Seg::Key("branch_caps"));
        let mut out = Vec::new();
        for (k, val) in m {
            let Some(glob) = k.as_str().filter(|g| !g.trim().is_empty()) else {
                return Err(self.error(
                    &here,
                    format!("{k:?} is not a branch name or glob (a non-empty string)"),
                ));
            };
            let mut key = here.clone();
            key.push(Seg::Name(glob));
            let pattern = glob_matcher(glob).map_err(|e| {
                self.error(&key, format!("{glob:?} is not a branch glob: {}", e.kind()))
            })?;
            let Some(usd) = val.as_f64() else {
                return Err(self.error(
                    &key,
                    format!("the cap of {glob:?} must be a number of dollars"),
                ));
            };
            self.non_negative(&key, Some(usd))?;
            out.push(BranchCap {
                glob: glob.to_owned(),
                pattern,
                cap: Micros::from_f64_dollars(usd),
            });
        }
        Ok(out)
    }

    fn limits(&self, at: &[Seg<'_>], l: &RawLimits) -> Result<(), ConfigError> {
        let with = |k: &'static str| {
            let mut p = at.to_vec();
            p.push(Seg::Key(k));
            p
        };
        for (k, val) in [
            ("monthly_usd_cap", l.monthly_usd_cap),
            ("weekly_usd_cap", l.weekly_usd_cap),
            ("daily_usd_cap", l.daily_usd_cap),
            ("session_usd_cap", l.session_usd_cap),
            ("max_usd_per_hour", l.max_usd_per_hour),
            ("branch_usd_cap", l.branch_usd_cap),
            ("grace_pct", l.grace_pct),
            ("alert_at_pct", l.alert_at_pct),
        ] {
            self.non_negative(&with(k), val)?;
        }
        if let Some(g) = l.grace_pct {
            if !(100.0..=1000.0).contains(&g) {
                return Err(self.error(
                    &with("grace_pct"),
                    format!("must be between 100 and 1000 (percent of the cap), not {g}"),
                ));
            }
        }
        if let Some(m) = &l.branch_caps {
            self.branch_caps(at, m)?;
        }
        if let Some(a) = l.alert_at_pct {
            if a > 100.0 {
                return Err(self.error(
                    &with("alert_at_pct"),
                    format!("must be at most 100 (percent of the cap), not {a}"),
                ));
            }
        }
        Ok(())
    }
}

/// Finds the line and column of a key path in block-style YAML, falling
/// back to the closest enclosing node found (or line 1).
fn locate(text: &str, at: &[Seg<'_>]) -> (usize, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let meaningful = |l: &str| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#')
    };
    // Current block: lines [start, end) whose content is deeper than `min`.
    let (mut start, mut end) = (0usize, lines.len());
    let mut found = (1usize, 1usize);
    // Column at which keys of the current mapping may start, if known.
    let mut key_col: Option<usize> = None;
    for seg in at {
        match seg {
            Seg::Key(_) | Seg::Name(_) => {
                let key = seg.to_string();
                let mut hit = None;
                for (i, l) in lines.iter().enumerate().take(end).skip(start) {
                    if !meaningful(l) {
                        continue;
                    }
                    // "key:" possibly after "- " on an item's first line.
                    let body = l.trim_start();
                    let (col, body) = match body.strip_prefix("- ") {
                        Some(rest) => (
                            indent(l) + 2 + (rest.len() - rest.trim_start().len()),
                            rest.trim_start(),
                        ),
                        None => (indent(l), body),
                    };
                    if key_col.is_some_and(|c| c != col) {
                        continue;
                    }
                    let unquoted = body.trim_start_matches(['"', '\'']);
                    if let Some(rest) = unquoted.strip_prefix(key.as_str()) {
                        let rest = rest.trim_start_matches(['"', '\'']);
                        if rest.trim_start().starts_with(':') {
                            hit = Some((i, col));
                            break;
                        }
                    }
                }
                let Some((i, col)) = hit else { return found };
                found = (i + 1, col + 1);
                // The value block: following lines deeper than this key.
                start = i + 1;
                let mut j = start;
                while j < end
                    && (!meaningful(lines[j])
                        || indent(lines[j]) > col
                        || lines[j].trim_start().starts_with("- ") && indent(lines[j]) == col)
                {
                    j += 1;
                }
                end = j;
                key_col = None;
            }
            Seg::Index(n) => {
                let mut count = 0usize;
                let mut item_col = None;
                let mut hit = None;
                for (i, l) in lines.iter().enumerate().take(end).skip(start) {
                    if !meaningful(l) {
                        continue;
                    }
                    let t = l.trim_start();
                    if t.starts_with("- ") || t == "-" {
                        let c = indent(l);
                        if item_col.is_none() {
                            item_col = Some(c);
                        }
                        if item_col == Some(c) {
                            if count == *n {
                                hit = Some((i, c));
                                break;
                            }
                            count += 1;
                        }
                    }
                }
                let Some((i, c)) = hit else { return found };
                found = (i + 1, c + 1);
                let mut j = i + 1;
                while j < end && (!meaningful(lines[j]) || indent(lines[j]) > c) {
                    j += 1;
                }
                start = i;
                end = j;
                // Keys of the item sit two columns right of its dash.
                let t = lines[i].trim_start();
                let after = &t[1..];
                key_col = Some(c + 1 + (after.len() - after.trim_start().len()));
            }
        }
    }
    found
}

/// Turns a serde error into one that names file, line, key and a
/// suggestion: the key from the error's path (`serde_path_to_error`), the
/// line and column from the YAML parser's [`serde_yaml_ng::Location`]
/// (or, where the parser points at the enclosing mapping, the key's own
/// line).
fn serde_error(
    path: &Path,
    text: &str,
    e: serde_path_to_error::Error<serde_yaml_ng::Error>,
) -> ConfigError {
    let at = e.path().to_string();
    let e = e.into_inner();
    let Some(loc) = e.location() else {
        return ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
    };
    let key = if at == "." || at.is_empty() {
        String::from("(document)")
    } else {
        at
    };
    // The parser's message, without the place it appends and the key path
    // it puts first (both known here).
    let msg = e.to_string();
    let place = format!(" at line {} column {}", loc.line(), loc.column());
    let msg = msg.strip_suffix(&place).unwrap_or(&msg);
    let detail = match msg.split_once(": ") {
        Some((k, d)) if !k.contains(' ') => d.to_owned(),
        _ => msg.to_owned(),
    };
    if detail.starts_with("empty key `") {
        let (line, column) = match locate(text, &parse_key_path(&key)) {
            (1, 1) => (loc.line(), loc.column()),
            found => found,
        };
        return ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            column,
            key,
            message: "left empty: give it a value or delete the key (an empty key is not \
                      \"no cap\" and not \"the default\")"
                .into(),
        };
    }
    let (key, message) = match unknown_field(&detail) {
        Some((field, expected)) => {
            let best = nearest(
                &field,
                &expected.iter().map(String::as_str).collect::<Vec<_>>(),
            );
            let best = best.or_else(|| nearest(&field, ARM_KEYS));
            // The error's path ends with the unknown key itself.
            (key, format!("unknown key {field:?}{}", did_you_mean(best)))
        }
        None => (key, detail),
    };
    // serde_yaml_ng points at the start of the enclosing mapping for some
    // errors; the key's own line is more useful when it can be found.
    let segs = parse_key_path(&key);
    let (line, column) = match locate(text, &segs) {
        // Not found (or the whole document): keep the parser's place.
        (1, 1) => (loc.line(), loc.column()),
        found => found,
    };
    ConfigError::Invalid {
        path: path.to_path_buf(),
        line,
        column,
        key,
        message,
    }
}

/// "budgets[1].grace_pct" -> [budgets, [1], grace_pct].
fn parse_key_path(key: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    if key == "(document)" {
        return out;
    }
    for part in key.split('.') {
        let (name, rest) = part.split_once('[').unwrap_or((part, ""));
        if !name.is_empty() {
            out.push(Seg::Name(name));
        }
        for idx in rest.split('[') {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                out.push(Seg::Index(i));
            }
        }
    }
    out
}

/// Parses serde's "unknown field `x`, expected one of `a`, `b`" (or
/// "expected `a`", or "there are no fields").
fn unknown_field(detail: &str) -> Option<(String, Vec<String>)> {
    let rest = detail.strip_prefix("unknown field `")?;
    let (field, tail) = rest.split_once('`')?;
    let expected = tail
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((field.to_owned(), expected))
}

fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| {
            (
                strsim::jaro_winkler(&word.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                *c,
            )
        })
        .filter(|(score, _)| *score > 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn did_you_mean(best: Option<&str>) -> String {
    best.map(|b| format!(" (did you mean {b:?}?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> PathContext {
        PathContext {
            home: Some(PathBuf::from("/home/u")),
            local_zone: Some(Tz::Europe__Paris),
        }
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/ob/budgets.yaml"), &ctx())
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    const OCTORATO: &str = "\
spend_json: ~/octorato/spend.json
default:
  grace_pct: 110
  action_on_breach: warn
budgets:
  - arm: acme
    monthly_usd_cap: 1000
    action_on_breach: hard_stop
    path: ~/github/acme
  - arm: acme-web
    monthly_usd_cap: 250.5
    path: $HOME/github/acme-web/
  - arm: beta
    monthly_usd_cap: 300
    grace_pct: 120
    action_on_breach: alert
";

    #[test]
    fn gate_patterns_match_names_and_globs() {
        let gate = Gate {
            tools: ["Agent", "Task", "mcp__*"].map(String::from).to_vec(),
            on_error: OnError::Deny,
        };
        assert!(gate.gates("Agent"));
        assert!(gate.gates("mcp__playwright__click"));
        assert!(!gate.gates("TaskCreate"));
        assert!(!gate.gates("Bash"));
    }

    #[test]
    fn loads_octorato_file_unchanged() {
        let c = parse(OCTORATO).unwrap();
        assert_eq!(c.arms.len(), 3);
        let acme = &c.arms[0];
        assert_eq!(acme.paths, vec!["/home/u/github/acme"]);
        assert_eq!(acme.caps.monthly, Some(Micros(1_000_000_000)));
        assert_eq!(
            acme.policy,
            Policy {
                grace_pct: 110,
                action: Action::HardStop,
                alert_at_pct: 80
            }
        );
        assert_eq!(c.arms[1].paths, vec!["/home/u/github/acme-web"]);
        assert_eq!(c.arms[1].caps.monthly, Some(Micros(250_500_000)));
        assert_eq!(c.arms[2].policy.action, Action::Alert);
        assert_eq!(c.arms[2].policy.grace_pct, 120);
        assert!(c.arms[2].paths.is_empty());
        assert_eq!(c.notices.len(), 1);
        assert!(c.notices[0].contains("spend_json"));
        assert_eq!(c.timezone, Tz::Europe__Paris);
        assert_eq!(c.gate.tools, DEFAULT_GATED_TOOLS.to_vec());
        assert_eq!(c.gate.on_error, OnError::Deny);
    }

    #[test]
    fn extensions_load() {
        let c = parse(
            "timezone: America/New_York\ndefault:\n  daily_usd_cap: 50\nbudgets:\n  - arm: a\n    paths: [/x/a, /y/a]\n    weekly_usd_cap: 100\n    session_usd_cap: 5\n    max_usd_per_hour: 20\n    alert_at_pct: 90\ntotal:\n  daily_usd_cap: 100\n  action_on_breach: hard_stop\ngate:\n  tools: [Agent, \"mcp__*\"]\n  on_error: allow\nprices:\n  claude-opus-9:\n    input: 20\n    output: 100\nclaude_dirs: [~/.claude]\nledger: ledger.sqlite\n",
        )
        .unwrap();
        let a = &c.arms[0];
        assert_eq!(a.paths, vec!["/x/a", "/y/a"]);
        assert_eq!(a.caps.daily, Some(Micros(50_000_000)));
        assert_eq!(a.caps.weekly, Some(Micros(100_000_000)));
        assert_eq!(a.caps.session, Some(Micros(5_000_000)));
        assert_eq!(a.caps.per_hour, Some(Micros(20_000_000)));
        assert_eq!(a.policy.alert_at_pct, 90);
        assert_eq!(
            c.total.as_ref().unwrap().caps.daily,
            Some(Micros(100_000_000))
        );
        assert_eq!(c.gate.on_error, OnError::Allow);
        assert_eq!(c.prices[0].0, "claude-opus-9");
        assert_eq!(c.claude_dirs, vec![PathBuf::from("/home/u/.claude")]);
        assert_eq!(c.ledger, Some(PathBuf::from("/etc/ob/ledger.sqlite")));
        assert_eq!(c.timezone, Tz::America__New_York);
    }

    #[test]
    fn unknown_key_names_line_and_suggests() {
        let e = err("budgets:\n  - arm: a\n    monthly_cap: 3\n");
        assert!(e.starts_with("/etc/ob/budgets.yaml:3:"), "{e}");
        assert!(
            e.contains("monthly_cap") && e.contains("did you mean \"monthly_usd_cap\""),
            "{e}"
        );
        let e = err("timezon: UTC\n");
        assert!(
            e.contains(":1:") && e.contains("did you mean \"timezone\""),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_names_line_and_key() {
        let e = err("budgets:\n  - arm: a\n    grace_pct: lots\n");
        assert!(e.contains(":3:") && e.contains("grace_pct"), "{e}");
    }

    #[test]
    fn negative_cap_names_line_and_key() {
        let e = err("budgets:\n  - arm: a\n    path: /a\n  - arm: b\n    monthly_usd_cap: -5\n");
        assert!(
            e.starts_with("/etc/ob/budgets.yaml:5:5: budgets[1].monthly_usd_cap:"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_arm_and_path_are_errors() {
        let e = err("budgets:\n  - arm: a\n  - arm: a\n");
        assert!(e.contains(":3:") && e.contains("duplicate arm"), "{e}");
        let e = err(
            "budgets:\n  - arm: a\n    path: /x\n  - arm: b\n    paths:\n      - /y\n      - /x/\n",
        );
        assert!(
            e.contains(":5:") && e.contains("budgets[1].paths") && e.contains("already arm \"a\""),
            "{e}"
        );
    }

    #[test]
    fn bad_time_zone_suggests() {
        let e = err("timezone: Europe/Pari\n");
        assert!(
            e.contains(":1:1: timezone:") && e.contains("Europe/Paris"),
            "{e}"
        );
    }

    #[test]
    fn stop_is_an_action_and_says_who_can_halt() {
        let c = parse(
            "default:\n  action_on_breach: stop\nbudgets:\n  - arm: a\n    monthly_usd_cap: 1\n  - arm: b\n    daily_usd_cap: 1\n    action_on_breach: hard_stop\n  - arm: c\n    max_usd_per_hour: 1\n    action_on_breach: hard_stop\n  - arm: d\n    session_usd_cap: 1\n    action_on_breach: warn\ntotal:\n  daily_usd_cap: 9\n  action_on_breach: stop\n",
        )
        .unwrap();
        let halts: Vec<bool> = c
            .arms
            .iter()
            .map(|a| can_halt(&a.caps, &a.policy))
            .collect();
        assert_eq!(c.arms[0].policy.action, Action::Stop);
        assert_eq!(halts, [true, false, true, false]);
        let t = c.total.as_ref().unwrap();
        assert!(t.policy.action == Action::Stop && can_halt(&t.caps, &t.policy));
        assert!(c.can_halt());
        // A stop arm without caps has nothing to halt at.
        let none = parse("budgets:\n  - arm: a\n    action_on_breach: stop\n").unwrap();
        assert!(!none.can_halt());
    }

    #[test]
    fn branch_caps_trunk_and_globs() {
        let c = parse(
            "default:\n  branch_usd_cap: 3\n  branch_caps:\n    \"fix/*\": 0.5\nbudgets:\n  - arm: a\n  - arm: b\n    branch_usd_cap: 1\n    branch_caps:\n      main: 9\n      \"feat/*\": 2\n      \"*\": 0.25\n",
        )
        .unwrap();
        let trunk = &c.trunk_branches;
        assert_eq!(trunk, &DEFAULT_TRUNK_BRANCHES.to_vec());
        let usd = |d: f64| Micros::from_f64_dollars(d);
        let (a, b) = (&c.arms[0], &c.arms[1]);
        // a inherits both keys from default:.
        assert_eq!(
            a.branch_cap("fix/typo", trunk),
            Some((usd(0.5), Some("fix/*")))
        );
        assert_eq!(a.branch_cap("feat/x", trunk), Some((usd(3.0), None)));
        assert_eq!(a.branch_cap("develop", trunk), None);
        assert_eq!(a.branch_cap("", trunk), None);
        // b's own branch_caps replace default's, first match in file order;
        // a glob names a trunk branch too.
        assert_eq!(b.branch_cap("main", trunk), Some((usd(9.0), Some("main"))));
        assert_eq!(
            b.branch_cap("feat/x/y", trunk),
            Some((usd(2.0), Some("feat/*")))
        );
        assert_eq!(
            b.branch_cap("fix/typo", trunk),
            Some((usd(0.25), Some("*")))
        );
        assert_eq!(b.caps.branch, Some(usd(1.0)));
        // A stop arm with only branch_caps can halt.
        let s =
            parse("budgets:\n  - arm: a\n    action_on_breach: stop\n    branch_caps: {x: 1}\n")
                .unwrap();
        assert!(s.arms[0].can_halt() && s.can_halt());
        let t = parse("trunk_branches: [release]\nbudgets:\n  - arm: a\n    branch_usd_cap: 1\n")
            .unwrap();
        assert_eq!(
            t.arms[0].branch_cap("main", &t.trunk_branches),
            Some((usd(1.0), None))
        );
        assert_eq!(t.arms[0].branch_cap("release", &t.trunk_branches), None);
        let e = err("budgets:\n  - arm: a\n    branch_caps: [1]\n");
        assert!(e.contains("budgets[0].branch_caps"), "{e}");
        let e = err("budgets:\n  - arm: a\n    branch_caps: {\"fix/[\": 1}\n");
        assert!(e.contains("not a branch glob"), "{e}");
        let e = err("budgets:\n  - arm: a\n    branch_caps:\n      x: -1\n");
        assert!(
            e.contains("budgets[0].branch_caps.x") && e.contains(":4:"),
            "{e}"
        );
    }

    #[test]
    fn bad_action_and_grace_are_errors() {
        assert!(err("budgets:\n  - arm: a\n    action_on_breach: halt\n").contains(":3:"));
        assert!(err("default:\n  grace_pct: 50\n").contains("default.grace_pct"));
    }

    #[test]
    fn syntax_error_names_the_file() {
        let e = err("budgets: [\n");
        assert!(e.starts_with("/etc/ob/budgets.yaml"), "{e}");
    }

    #[test]
    fn a_file_with_nothing_to_enforce_is_refused() {
        // Empty, comments only, an empty document: "holds no settings".
        for text in [
            "",
            "\n\n",
            "# budgets to come\n",
            "---\n",
            "---\n...\n",
            "~\n",
        ] {
            let e = err(text);
            assert!(
                e.starts_with("/etc/ob/budgets.yaml: holds no settings"),
                "{text:?}: {e}"
            );
        }
        // A bare `budgets:` is a key left empty.
        let e = err("budgets:\n");
        assert!(
            e.starts_with("/etc/ob/budgets.yaml:1:1: budgets: left empty"),
            "{e}"
        );
        // Settings but no arm and no total cap: cut short before `budgets:`.
        let e = err("timezone: UTC\ngate:\n  on_error: deny\n");
        assert!(
            e.starts_with("/etc/ob/budgets.yaml: no arm and no `total:` cap"),
            "{e}"
        );
        let e = err("timezone: UTC\nbudgets: []\n");
        assert!(
            e.starts_with("/etc/ob/budgets.yaml:2:1: budgets: no arm and no `total:` cap"),
            "{e}"
        );
        let e = err("total:\n  grace_pct: 120\n");
        assert!(e.contains(":1:1: total: no arm and no"), "{e}");
        // What is enough: one arm (even without caps), or one total cap.
        assert_eq!(parse("budgets:\n  - arm: a\n").unwrap().arms.len(), 1);
        let c = parse("budgets: []\ntotal:\n  daily_usd_cap: 5\n").unwrap();
        assert!(c.arms.is_empty());
        assert_eq!(c.total.unwrap().caps.daily, Some(Micros(5_000_000)));
    }

    #[test]
    fn a_key_left_empty_is_an_error_naming_it() {
        let e = err("budgets:\n  - arm: a\n    path: /a\n    monthly_usd_cap:\n");
        assert!(
            e.starts_with("/etc/ob/budgets.yaml:4:5: budgets[0].monthly_usd_cap: left empty"),
            "{e}"
        );
        let e = err("budgets:\n  - arm: a\n  - arm: b\n    daily_usd_cap: null\n");
        assert!(
            e.starts_with("/etc/ob/budgets.yaml:4:5: budgets[1].daily_usd_cap: left empty"),
            "{e}"
        );
        let e = err("total:\n  weekly_usd_cap: 3\n  monthly_usd_cap: ~\n");
        assert!(
            e.starts_with("/etc/ob/budgets.yaml:3:3: total.monthly_usd_cap: left empty"),
            "{e}"
        );
        for key in [
            "weekly_usd_cap",
            "session_usd_cap",
            "max_usd_per_hour",
            "grace_pct",
            "action_on_breach",
            "alert_at_pct",
        ] {
            let e = err(&format!("default:\n  {key}:\nbudgets:\n  - arm: a\n"));
            assert!(
                e.starts_with(&format!(
                    "/etc/ob/budgets.yaml:2:3: default.{key}: left empty"
                )),
                "{e}"
            );
        }
        let e = err("budgets: [{arm: a, monthly_usd_cap: }]\n");
        assert!(e.contains("budgets[0].monthly_usd_cap: left empty"), "{e}");
        let e = err("budgets:\n  - arm: a\ntotal:\n");
        assert!(e.contains(":3:1: total: left empty"), "{e}");
    }

    #[test]
    fn a_byte_order_mark_is_accepted() {
        let c =
            parse("\u{feff}timezone: UTC\nbudgets:\n  - arm: a\n    monthly_usd_cap: 5\n").unwrap();
        assert_eq!(c.arms[0].caps.monthly, Some(Micros(5_000_000)));
        assert_eq!(c.timezone, Tz::UTC);
        // Lines are still counted from the first one.
        let e = err("\u{feff}budgets:\n  - arm: a\n    grace_pct: 50\n");
        assert!(e.contains(":3:5: budgets[0].grace_pct"), "{e}");
    }

    #[test]
    fn amounts_that_cannot_be_represented_are_refused() {
        // $1e12 at 1000 % used to wrap to a negative hard-stop amount.
        let e = err("budgets:\n  - arm: a\n    monthly_usd_cap: 1e12\n    grace_pct: 1000\n");
        assert!(
            e.starts_with("/etc/ob/budgets.yaml:3:5: budgets[0].monthly_usd_cap:")
                && e.contains("at most 1e9"),
            "{e}"
        );
        let e = err("total:\n  daily_usd_cap: 1000000001\n");
        assert!(e.contains(":2:3: total.daily_usd_cap:"), "{e}");
        let e = err("budgets:\n  - arm: a\nalerts:\n  spike_min_usd: 1e10\n");
        assert!(e.contains(":4:3: alerts.spike_min_usd:"), "{e}");
        // The largest accepted cap at the largest grace is exact.
        let c =
            parse("budgets:\n  - arm: a\n    monthly_usd_cap: 1e9\n    grace_pct: 1000\n").unwrap();
        let a = &c.arms[0];
        assert_eq!(
            crate::budget::hard_stop_at(a.caps.monthly.unwrap(), &a.policy),
            Micros(10_000_000_000 * Micros::PER_DOLLAR)
        );
    }

    #[test]
    fn deep_flow_nesting_is_refused_before_parsing() {
        let deep = format!("budgets: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let e = err(&deep);
        assert!(
            e.starts_with("/etc/ob/budgets.yaml: line 1: nested deeper than 32"),
            "{e}"
        );
        let deep = format!(
            "budgets:\n  - arm: a\nspend_json: {}1{}\n",
            "{a: ".repeat(40),
            "}".repeat(40)
        );
        assert!(err(&deep).contains("line 3: nested deeper"));
        // Brackets in quotes and comments are not nesting.
        let many = "[".repeat(40);
        let c = parse(&format!(
            "# {many}\nbudgets:\n  - arm: \"{many}\"\n    path: '/x/{many}''s'\n"
        ))
        .unwrap();
        assert_eq!(c.arms[0].name, many);
        assert_eq!(c.arms[0].paths, vec![format!("/x/{many}'s")]);
        // An escape as the last byte (an unfinished string) is a YAML error,
        // not a crash of the scan.
        assert!(err("budgets: \"abc\\").starts_with("/etc/ob/budgets.yaml"));
    }

    #[test]
    fn oversized_text_is_refused() {
        let big = format!(
            "budgets:\n  - arm: a\n#{}\n",
            "x".repeat(MAX_CONFIG_BYTES as usize)
        );
        assert!(err(&big).contains("larger than the 4194304 bytes"));
    }

    #[test]
    fn expands_and_normalises_paths() {
        let c = ctx();
        let base = Path::new("/etc/ob");
        assert_eq!(c.expand("~", base), "/home/u");
        assert_eq!(c.expand("${HOME}/a/./b/../c/", base), "/home/u/a/c");
        assert_eq!(c.expand("rel/x", base), "/etc/ob/rel/x");
        assert_eq!(c.expand("/a//b", base), "/a/b");
    }
}
