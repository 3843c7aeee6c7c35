//! Saying each alert once, also under concurrency.
//!
//! `alerts` decides which events are new and records them in one
//! IMMEDIATE transaction, so of several runs started together exactly one
//! claims each event. Without `--command` a claimed event is recorded as
//! given (`notices`, channel `"alerts"`) before it is printed. With
//! `--command` it goes to `alert_outbox` instead; a run then leases one
//! row at a time, pipes it to the command, and only when the command
//! exits 0 moves it to `notices`. A failed row is released for the next
//! run; a row whose runner died is taken over once its lease expires.

use std::collections::HashSet;

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::{Ledger, Result};

/// The `notices` channel of the cron job.
pub const CHANNEL: &str = "alerts";

/// What makes an alert event unique: scope (`arm:<name>`, `total`,
/// `unattributed`), cap (`monthly`, ...), the period's start, the level.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlertKey {
    pub scope: String,
    pub cap: String,
    pub period_start: String,
    pub level: String,
}

/// An event for the outbox, rendered both ways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub key: AlertKey,
    pub text: String,
    pub json: String,
}

/// What one claiming transaction writes.
#[derive(Debug, Default)]
pub struct AlertWrites {
    /// Recorded as given (said, or implied by a higher level said now).
    pub given: Vec<AlertKey>,
    /// Queued for delivery by `--command`.
    pub queue: Vec<Queued>,
}

/// An outbox row leased to this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub key: AlertKey,
    pub text: String,
    pub json: String,
}

impl Ledger {
    /// In one IMMEDIATE transaction: finds which of `keys` are already
    /// known (given, or waiting in the outbox), lets `decide` choose what
    /// to write, writes it and commits. Concurrent callers are serialised,
    /// so no two of them can both decide that the same key is new.
    pub fn claim_alerts<T>(
        &mut self,
        keys: &[AlertKey],
        now_ms: i64,
        decide: impl FnOnce(&HashSet<AlertKey>) -> (AlertWrites, T),
    ) -> Result<T> {
        let (path, busy) = (self.path.clone(), self.busy);
        let err = |e| super::classify(&path, busy, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let mut known = HashSet::new();
        {
            let mut given = tx
                .prepare_cached(
                    "SELECT 1 FROM notices WHERE channel = ?1 AND scope = ?2 AND cap = ?3 AND period_start = ?4 AND level = ?5
                     UNION ALL
                     SELECT 1 FROM alert_outbox WHERE scope = ?2 AND cap = ?3 AND period_start = ?4 AND level = ?5
                     LIMIT 1",
                )
                .map_err(err)?;
            for k in keys {
                let hit: Option<i64> = given
                    .query_row(
                        params![CHANNEL, k.scope, k.cap, k.period_start, k.level],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(err)?;
                if hit.is_some() {
                    known.insert(k.clone());
                }
            }
        }
        let (writes, out) = decide(&known);
        {
            let mut give = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO notices (channel, scope, cap, period_start, level, created_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(err)?;
            for k in &writes.given {
                give.execute(params![
                    CHANNEL,
                    k.scope,
                    k.cap,
                    k.period_start,
                    k.level,
                    now_ms
                ])
                .map_err(err)?;
            }
            let mut queue = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO alert_outbox (scope, cap, period_start, level, text, json, created_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(err)?;
            for q in &writes.queue {
                let k = &q.key;
                queue
                    .execute(params![
                        k.scope,
                        k.cap,
                        k.period_start,
                        k.level,
                        q.text,
                        q.json,
                        now_ms
                    ])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(out)
    }

    /// Leases the oldest outbox row that nobody holds (or whose holder's
    /// lease, taken before `wall_ms - lease_ms`, expired), skipping `skip`.
    pub fn lease_delivery(
        &self,
        me: &str,
        wall_ms: i64,
        lease_ms: i64,
        skip: &[i64],
    ) -> Result<Option<Delivery>> {
        let skip: Vec<String> = skip.iter().map(i64::to_string).collect();
        let sql = format!(
            "UPDATE alert_outbox SET claimed_by = ?1, claimed_ms = ?2
             WHERE id = (SELECT id FROM alert_outbox
                         WHERE (claimed_by IS NULL OR claimed_ms < ?3) AND id NOT IN ({})
                         ORDER BY id LIMIT 1)
             RETURNING id, scope, cap, period_start, level, text, json",
            skip.join(",")
        );
        self.conn
            .query_row(&sql, params![me, wall_ms, wall_ms - lease_ms], |r| {
                Ok(Delivery {
                    id: r.get(0)?,
                    key: AlertKey {
                        scope: r.get(1)?,
                        cap: r.get(2)?,
                        period_start: r.get(3)?,
                        level: r.get(4)?,
                    },
                    text: r.get(5)?,
                    json: r.get(6)?,
                })
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The command took `d`: it is given, and leaves the outbox.
    pub fn delivered(&mut self, d: &Delivery, now_ms: i64) -> Result<()> {
        let (path, busy) = (self.path.clone(), self.busy);
        let err = |e| super::classify(&path, busy, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let k = &d.key;
        tx.execute(
            "INSERT OR IGNORE INTO notices (channel, scope, cap, period_start, level, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![CHANNEL, k.scope, k.cap, k.period_start, k.level, now_ms],
        )
        .map_err(err)?;
        tx.execute("DELETE FROM alert_outbox WHERE id = ?1", params![d.id])
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// The command failed on `d`: release it for the next run.
    pub fn delivery_failed(&self, d: &Delivery, me: &str, reason: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE alert_outbox SET claimed_by = NULL, claimed_ms = NULL, attempts = attempts + 1, last_error = ?3
                 WHERE id = ?1 AND claimed_by = ?2",
                params![d.id, me, reason],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Outbox rows still waiting for delivery.
    pub fn pending_deliveries(&self) -> Result<i64> {
        self.conn
            .query_row("SELECT COUNT(*) FROM alert_outbox", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(level: &str) -> AlertKey {
        AlertKey {
            scope: "arm:a".into(),
            cap: "monthly".into(),
            period_start: "2026-11-01".into(),
            level: level.into(),
        }
    }

    fn open() -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(&dir.path().join("l.sqlite"), Duration::from_secs(5)).unwrap();
        (dir, l)
    }

    #[test]
    fn claimed_keys_are_known_to_the_next_claim() {
        let (_d, mut l) = open();
        let keys = [key("WARN"), key("ALERT")];
        let known = l
            .claim_alerts(&keys, 1, |k| {
                (
                    AlertWrites {
                        given: vec![key("WARN")],
                        queue: vec![],
                    },
                    k.clone(),
                )
            })
            .unwrap();
        assert!(known.is_empty());
        let q = Queued {
            key: key("ALERT"),
            text: "t".into(),
            json: "{}".into(),
        };
        l.claim_alerts(&keys, 2, |_| {
            (
                AlertWrites {
                    given: vec![],
                    queue: vec![q],
                },
                (),
            )
        })
        .unwrap();
        let known = l
            .claim_alerts(&keys, 3, |k| (AlertWrites::default(), k.clone()))
            .unwrap();
        assert_eq!(known.len(), 2);
    }

    #[test]
    fn a_lease_is_exclusive_until_released_or_expired() {
        let (_d, mut l) = open();
        let q = Queued {
            key: key("WARN"),
            text: "t".into(),
            json: "{}".into(),
        };
        l.claim_alerts(&[], 1, |_| {
            (
                AlertWrites {
                    given: vec![],
                    queue: vec![q],
                },
                (),
            )
        })
        .unwrap();
        let d = l
            .lease_delivery("me", 1_000, 100, &[])
            .unwrap()
            .expect("a row");
        assert_eq!(l.lease_delivery("other", 1_050, 100, &[]).unwrap(), None);
        assert_eq!(l.lease_delivery("me", 1_050, 100, &[d.id]).unwrap(), None);
        // Released after a failure: the next run takes it.
        l.delivery_failed(&d, "me", "exit 1").unwrap();
        let d2 = l
            .lease_delivery("other", 1_060, 100, &[])
            .unwrap()
            .expect("released");
        assert_eq!(d2.id, d.id);
        // Held by a run that died: taken over after the lease.
        assert_eq!(l.lease_delivery("third", 1_100, 100, &[]).unwrap(), None);
        let d3 = l
            .lease_delivery("third", 1_161, 100, &[])
            .unwrap()
            .expect("expired lease");
        l.delivered(&d3, 5).unwrap();
        assert_eq!(l.pending_deliveries().unwrap(), 0);
        assert!(l
            .notice_given(&crate::ledger::notices::NoticeKey {
                channel: CHANNEL,
                scope: "arm:a",
                cap: "monthly",
                period_start: "2026-11-01",
                level: "WARN"
            })
            .unwrap());
    }
}
