//! Where budgets.yaml, the ledger and Claude Code's transcripts are: from
//! the flags that name them, the config, and the environment. The binary
//! reads the flags and the environment (`cli`) and passes them in.

use std::path::{Path, PathBuf};

use super::{Config, ConfigError};

/// The flags and environment variables that locate things.
#[derive(Debug, Clone, Default)]
pub struct Locations {
    /// `--config` (or `$OCTO_BUDGET_CONFIG`).
    pub config: Option<PathBuf>,
    /// `--ledger` (or `$OCTO_BUDGET_LEDGER`).
    pub ledger: Option<PathBuf>,
    /// `--claude-dir`, repeated.
    pub claude_dirs: Vec<PathBuf>,
    pub home: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
    pub xdg_data_home: Option<PathBuf>,
    /// `$CLAUDE_CONFIG_DIR` (several, comma-separated).
    pub claude_config_dir: Option<PathBuf>,
    /// The working folder.
    pub cwd: Option<PathBuf>,
    /// This machine's name in a team ledger (`$OCTO_BUDGET_HOST`, else the
    /// host name).
    pub host: String,
}

impl Locations {
    /// `$XDG_CONFIG_HOME`, else `~/.config`.
    pub fn xdg_config(&self) -> Option<PathBuf> {
        self.xdg_config_home
            .clone()
            .or_else(|| self.home.as_ref().map(|h| h.join(".config")))
    }

    /// The user's own budgets.yaml:
    /// `$XDG_CONFIG_HOME/octo-budget/budgets.yaml`.
    pub fn user_config(&self) -> Option<PathBuf> {
        self.xdg_config()
            .map(|x| x.join("octo-budget").join("budgets.yaml"))
    }

    /// `--config`, `$OCTO_BUDGET_CONFIG`, `./budgets.yaml`, then
    /// `$XDG_CONFIG_HOME/octo-budget/budgets.yaml`.
    pub fn config_path(&self) -> Result<PathBuf, ConfigError> {
        if let Some(p) = &self.config {
            return Ok(p.clone());
        }
        let mut tried = Vec::new();
        let local = self.cwd.clone().unwrap_or_default().join("budgets.yaml");
        if local.is_file() {
            return Ok(local);
        }
        tried.push(local);
        if let Some(p) = self.user_config() {
            if p.is_file() {
                return Ok(p);
            }
            tried.push(p);
        }
        Err(ConfigError::NotFound {
            tried: tried
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// `--ledger`, `$OCTO_BUDGET_LEDGER`, `ledger:`, then
    /// `$XDG_DATA_HOME/octo-budget/ledger.sqlite`.
    ///
    /// For a team ledger (a `postgres://` URI) it is this machine's working
    /// copy of it: `$XDG_DATA_HOME/octo-budget/team/<host>-<hash of the
    /// URI>.sqlite` (see `ledger::team`).
    pub fn ledger_path(&self, config: &Config) -> PathBuf {
        self.ledger_path_with(config.ledger.as_deref())
    }

    /// [`Locations::ledger_path`] for a config whose `ledger:` is
    /// `configured` (known before the config is parsed: None).
    pub fn ledger_path_with(&self, configured: Option<&Path>) -> PathBuf {
        let data = self
            .xdg_data_home
            .clone()
            .or_else(|| self.home.as_ref().map(|h| h.join(".local").join("share")))
            .unwrap_or_else(|| PathBuf::from("."));
        if let Some(uri) = self.team_ledger_with(configured) {
            let host: String = self
                .host
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let hash = xxhash_rust::xxh3::xxh3_64(uri.trim().as_bytes());
            return data
                .join("octo-budget")
                .join("team")
                .join(format!("{host}-{hash:016x}.sqlite"));
        }
        if let Some(p) = &self.ledger {
            return p.clone();
        }
        if let Some(p) = configured {
            return p.to_path_buf();
        }
        data.join("octo-budget").join("ledger.sqlite")
    }

    /// The team ledger's URI, when `--ledger` (or `$OCTO_BUDGET_LEDGER`),
    /// else `ledger:`, is a `postgres://` or `postgresql://` URI.
    pub fn team_ledger<'a>(&'a self, config: &'a Config) -> Option<&'a str> {
        self.team_ledger_with(config.ledger.as_deref())
    }

    fn team_ledger_with<'a>(&'a self, configured: Option<&'a Path>) -> Option<&'a str> {
        let named = self.ledger.as_deref().or(configured)?;
        named.to_str().filter(|s| crate::ledger::team::is_uri(s))
    }

    /// `$CLAUDE_CONFIG_DIR`'s folders (comma-separated).
    pub fn claude_config_dirs(&self) -> Vec<PathBuf> {
        self.claude_config_dir
            .as_deref()
            .and_then(|d| d.to_str())
            .map(|d| {
                d.split(',')
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `--claude-dir`, `claude_dirs:`, `$CLAUDE_CONFIG_DIR`, then both
    /// `~/.claude` and `$XDG_CONFIG_HOME/claude`.
    pub fn claude_dirs(&self, config: &Config) -> Vec<PathBuf> {
        if !self.claude_dirs.is_empty() {
            return self.claude_dirs.clone();
        }
        if !config.claude_dirs.is_empty() {
            return config.claude_dirs.clone();
        }
        if self.claude_config_dir.is_some() {
            return self.claude_config_dirs();
        }
        let mut dirs = Vec::new();
        if let Some(h) = &self.home {
            dirs.push(h.join(".claude"));
        }
        if let Some(x) = self.xdg_config() {
            dirs.push(x.join("claude"));
        }
        dirs
    }

    /// The `projects/` trees of every Claude dir octo-budget may read from:
    /// the ones in use, `claude_dirs:`, `$CLAUDE_CONFIG_DIR`, `~/.claude` and
    /// `~/.config/claude`, and the one holding the hook's own transcript.
    pub fn transcript_trees(&self, cfg: &Config, transcript: Option<&Path>) -> Vec<PathBuf> {
        let mut dirs = self.claude_dirs(cfg);
        dirs.extend(cfg.claude_dirs.iter().cloned());
        dirs.extend(self.claude_config_dirs());
        if let Some(h) = &self.home {
            dirs.push(h.join(".claude"));
            dirs.push(h.join(".config").join("claude"));
        }
        if let Some(x) = &self.xdg_config_home {
            dirs.push(x.join("claude"));
        }
        let cwd = self.cwd.clone().unwrap_or_else(|| PathBuf::from("/"));
        let mut trees: Vec<PathBuf> = dirs.iter().map(|d| cwd.join(d).join("projects")).collect();
        if let Some(p) = transcript
            .into_iter()
            .flat_map(Path::ancestors)
            .find(|a| a.file_name().is_some_and(|n| n == "projects"))
        {
            trees.push(p.to_path_buf());
        }
        trees.sort();
        trees.dedup();
        trees
    }
}
