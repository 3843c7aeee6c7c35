//! budgets.yaml as validated, kept for the hook (`config::cached` says what
//! the key covers and how a config is stored). Reading or writing an entry
//! never waits for another process: a busy ledger only means the file is
//! parsed this time.

use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};

use super::{Ledger, Result};

/// How many configs the ledger keeps (one per budgets.yaml in use, and the
/// ones before an edit until newer ones push them out).
const KEPT: i64 = 8;

impl Ledger {
    /// The config stored under `key`, if any.
    pub fn cached_config(&self, key: &[u8; 16]) -> Result<Option<String>> {
        self.conn
            .prepare_cached("SELECT config FROM config_cache WHERE key = ?1")
            .and_then(|mut s| s.query_row(params![&key[..]], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))
    }

    /// Stores `config` under `key`, keeping the [`KEPT`] newest entries.
    /// Does not wait for the ledger's lock: a busy ledger is an error.
    pub fn store_config(&self, key: &[u8; 16], config: &str) -> Result<()> {
        self.without_waiting(|| {
            let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT OR REPLACE INTO config_cache (key, config) VALUES (?1, ?2)",
                params![&key[..], config],
            )?;
            tx.execute(
                "DELETE FROM config_cache WHERE rowid <= (SELECT max(rowid) FROM config_cache) - ?1",
                params![KEPT],
            )?;
            tx.commit()
        })
        .and_then(|stored| stored)
        .map_err(|e| self.err(e))
    }
}
