//! A loaded budgets.yaml with what is derived from it: the arm lookup
//! (symlinked arm paths resolved on this machine) and the price table,
//! each built on first use.

use std::sync::OnceLock;

use crate::attribution::Attributor;
use crate::config::{normalise_path, Config};
use crate::ledger::query::real_path;
use crate::pricing::PriceTable;

/// A loaded configuration with what is derived from it.
pub struct Loaded {
    pub config: Config,
    /// Built on first use: resolving every arm's path on this machine is a
    /// `realpath` per arm, which a hook call for a tool it lets through
    /// never needs.
    attributor: OnceLock<Attributor>,
    /// Built on first use: the hook's calls for tools it does not gate
    /// never price anything.
    prices: OnceLock<PriceTable>,
}

impl Loaded {
    /// `config` with its arm lookup: an arm path reached through a symlink
    /// on this machine also owns the real folder (paths that do not exist
    /// here stay text).
    pub fn new(config: Config) -> Loaded {
        Loaded {
            config,
            attributor: OnceLock::new(),
            prices: OnceLock::new(),
        }
    }

    /// `config` with the given arm lookup.
    pub fn with_attributor(config: Config, attributor: Attributor) -> Loaded {
        Loaded {
            config,
            attributor: OnceLock::from(attributor),
            prices: OnceLock::new(),
        }
    }

    /// The arm lookup (arm paths reached through a symlink on this machine
    /// also own the real folder).
    pub fn attributor(&self) -> &Attributor {
        self.attributor
            .get_or_init(|| Attributor::with_real_paths(&self.config.arms, real_path))
    }

    /// The embedded price table with the config's `prices:` overrides.
    pub fn prices(&self) -> &PriceTable {
        self.prices
            .get_or_init(|| PriceTable::new(&self.config.prices))
    }

    /// The arm that owns a directory of this machine: by its spelling,
    /// else by its real path (a symlinked checkout).
    pub fn arm_of_dir(&self, dir: &str) -> Option<usize> {
        let dir = normalise_path(dir);
        let attributor = self.attributor();
        attributor
            .by_cwd(&dir)
            .or_else(|| real_path(&dir).and_then(|r| attributor.by_cwd(&r)))
    }
}
