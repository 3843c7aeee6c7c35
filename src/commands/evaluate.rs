//! Every cap that applies to an arm (and the team total) at `now`, with
//! its spend and tier: what `check`, `status` and `alerts` decide from.

use std::collections::HashMap;

use anyhow::Result;
use chrono::{DateTime, Duration, Utc};

use super::Loaded;
use crate::budget::{hard_stop_at, tier, Period, PeriodKind, Tier};
use crate::config::{Caps, Policy};
use crate::ledger::query::Filter;
use crate::ledger::Ledger;
use crate::money::{Micros, Picos};
use crate::spend::{Owner, Pricer, Resolver};

/// Which cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CapKind {
    Monthly,
    Weekly,
    Daily,
    Session,
    Hourly,
    /// One git branch of an arm, over all time.
    Branch,
}

impl CapKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CapKind::Monthly => "monthly",
            CapKind::Weekly => "weekly",
            CapKind::Daily => "daily",
            CapKind::Session => "session",
            CapKind::Hourly => "hourly",
            CapKind::Branch => "branch",
        }
    }
}

/// Whose cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Arm(String),
    Total,
    /// One branch of an arm (a branch cap).
    Branch {
        arm: String,
        branch: String,
    },
}

impl Scope {
    /// The arm (or "total"); a branch cap's arm.
    pub fn name(&self) -> &str {
        match self {
            Scope::Arm(a) | Scope::Branch { arm: a, .. } => a,
            Scope::Total => "total",
        }
    }

    /// The branch of a branch cap.
    pub fn branch(&self) -> Option<&str> {
        match self {
            Scope::Branch { branch, .. } => Some(branch),
            _ => None,
        }
    }
}

/// One cap at `now`.
#[derive(Debug, Clone)]
pub struct CapState {
    pub scope: Scope,
    pub kind: CapKind,
    pub limit: Micros,
    pub spent: Micros,
    pub policy: Policy,
    pub tier: Tier,
    /// The period the cap covers (for a session: all of it; for the burn
    /// rate: the trailing hour).
    pub period: Period,
}

impl CapState {
    /// Where this cap blocks (or halts), if it can.
    pub fn hard_stop_at(&self) -> Option<Micros> {
        self.policy.action.has_hard_stop().then(|| self.blocks_at())
    }

    /// The spend at which the cap stops work on a hard_stop or stop arm.
    /// The burn-rate limit has no grace.
    pub fn blocks_at(&self) -> Micros {
        if self.kind == CapKind::Hourly {
            self.limit
        } else {
            hard_stop_at(self.limit, &self.policy)
        }
    }

    /// True when reaching the hard stop halts the agent (rather than
    /// refusing gated tools): any cap of a `stop` arm, the session cap and
    /// burn rate of a `hard_stop` arm.
    pub fn halts(&self) -> bool {
        match self.policy.action {
            crate::config::Action::Stop => true,
            crate::config::Action::HardStop => {
                matches!(self.kind, CapKind::Session | CapKind::Hourly)
            }
            _ => false,
        }
    }

    pub fn remaining(&self) -> Micros {
        self.limit.saturating_sub(self.spent).max(Micros(0))
    }

    /// The first instant the cap no longer counts today's spend (None for
    /// session caps, which never reset).
    pub fn resets(&self) -> Option<DateTime<Utc>> {
        match self.kind {
            CapKind::Session | CapKind::Branch => None,
            _ => Some(self.period.end),
        }
    }
}

/// The cap that blocks, if any: of the caps at hard_stop, the one furthest
/// over its limit (what the refusal names).
pub fn blocking(caps: &[CapState]) -> Option<&CapState> {
    worst_at(caps, Tier::HardStop)
}

/// The cap that halts the agent, if any: of the caps at stop, the one
/// furthest over its limit.
pub fn halting(caps: &[CapState]) -> Option<&CapState> {
    worst_at(caps, Tier::Stop)
}

fn worst_at(caps: &[CapState], tier: Tier) -> Option<&CapState> {
    caps.iter()
        .filter(|c| c.tier == tier)
        .max_by_key(|c| (c.spent.0 as i128 * 1000) / c.limit.0.max(1) as i128)
}

/// Which caps to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// Every cap (gated tools, prompts, `status`).
    All,
    /// Only the caps that can halt the agent (see `config::can_halt`):
    /// all that a tool the gate does not list needs, and fewer queries.
    Halting,
}

/// Evaluates caps. `arm` is an index into the config's arms.
pub struct Evaluator<'a> {
    pub loaded: &'a Loaded,
    pub ledger: &'a Ledger,
    pub now: DateTime<Utc>,
}

impl Evaluator<'_> {
    /// Every cap of `arm` (if any), the session cap for `session` (if the
    /// arm has one) and the team total's caps.
    pub fn caps(&self, arm: Option<usize>, session: Option<&str>) -> Result<Vec<CapState>> {
        self.caps_of(arm, session, Which::All)
    }

    /// The caps `which` asks for (see [`Which`]).
    pub fn caps_of(
        &self,
        arm: Option<usize>,
        session: Option<&str>,
        which: Which,
    ) -> Result<Vec<CapState>> {
        let cfg = &self.loaded.config;
        let wanted = |caps: &crate::config::Caps, policy: &Policy| {
            which == Which::All || crate::config::can_halt(caps, policy)
        };
        let arm = arm.filter(|&i| which == Which::All || cfg.arms[i].can_halt());
        let total = cfg.total.as_ref().filter(|t| wanted(&t.caps, &t.policy));
        if arm.is_none() && total.is_none() {
            return Ok(Vec::new());
        }
        let places = self.ledger.places()?;
        let mut out = Vec::new();
        if let Some(i) = arm {
            let a = &cfg.arms[i];
            let empty = HashMap::new();
            let resolver = Resolver {
                attributor: &self.loaded.attributor,
                places: &places,
                session_cwds: &empty,
            };
            let candidates = resolver.candidate_places(i);
            let scope = Scope::Arm(a.name.clone());
            // A hard_stop arm halts only at its session cap and burn rate.
            let calendar = which == Which::All || a.policy.action == crate::config::Action::Stop;
            if calendar {
                self.calendar_caps(
                    &mut out,
                    &scope,
                    &a.caps,
                    &a.policy,
                    Some((i, &candidates)),
                    &places,
                )?;
            }
            if let (Some(limit), Some(s)) = (a.caps.session, session) {
                let whole = Period {
                    kind: PeriodKind::All,
                    start: DateTime::<Utc>::MIN_UTC,
                    end: DateTime::<Utc>::MAX_UTC,
                };
                let spent = self.spend(&whole, None, Some(s), &places)?;
                out.push(self.state(
                    scope.clone(),
                    CapKind::Session,
                    limit,
                    spent,
                    a.policy,
                    whole,
                ));
            }
            if let Some(limit) = a.caps.per_hour {
                let hour = Period::trailing_hour(self.now);
                let spent = self.spend(&hour, Some((i, &candidates)), None, &places)?;
                out.push(self.state(scope.clone(), CapKind::Hourly, limit, spent, a.policy, hour));
            }
        }
        if let Some(t) = total {
            self.calendar_caps(&mut out, &Scope::Total, &t.caps, &t.policy, None, &places)?;
        }
        Ok(out)
    }

    /// The cap of `branch` on `arm`, if the arm caps that branch (see
    /// [`crate::config::Arm::branch_cap`]): its spend on the arm over all
    /// time. `which` as for [`Self::caps_of`].
    pub fn branch_cap(
        &self,
        arm: Option<usize>,
        branch: Option<&str>,
        which: Which,
    ) -> Result<Option<CapState>> {
        let cfg = &self.loaded.config;
        let (Some(i), Some(branch)) = (arm, branch) else {
            return Ok(None);
        };
        let a = &cfg.arms[i];
        if which == Which::Halting && a.policy.action != crate::config::Action::Stop {
            return Ok(None);
        }
        let Some((limit, _)) = a.branch_cap(branch, &cfg.trunk_branches) else {
            return Ok(None);
        };
        let places = self.ledger.places()?;
        let empty = HashMap::new();
        let candidates = Resolver {
            attributor: &self.loaded.attributor,
            places: &places,
            session_cwds: &empty,
        }
        .candidate_places(i);
        let whole = Period {
            kind: PeriodKind::All,
            start: DateTime::<Utc>::MIN_UTC,
            end: DateTime::<Utc>::MAX_UTC,
        };
        let spent = self.spend_on(&whole, Some((i, &candidates)), None, Some(branch), &places)?;
        let scope = Scope::Branch {
            arm: a.name.clone(),
            branch: branch.to_owned(),
        };
        Ok(Some(self.state(
            scope,
            CapKind::Branch,
            limit,
            spent,
            a.policy,
            whole,
        )))
    }

    /// The branches (other than none) the arm's candidate places have
    /// spend on, over all time.
    pub fn arm_branches(&self, arm: usize) -> Result<Vec<String>> {
        let places = self.ledger.places()?;
        let empty = HashMap::new();
        let candidates = Resolver {
            attributor: &self.loaded.attributor,
            places: &places,
            session_cwds: &empty,
        }
        .candidate_places(arm);
        Ok(self.ledger.branches(&candidates)?)
    }

    fn calendar_caps(
        &self,
        out: &mut Vec<CapState>,
        scope: &Scope,
        caps: &Caps,
        policy: &Policy,
        arm: Option<(usize, &[i64])>,
        places: &HashMap<i64, crate::ledger::query::Place>,
    ) -> Result<()> {
        let tz = self.loaded.config.timezone;
        for (kind, pk, limit) in [
            (CapKind::Monthly, PeriodKind::Month, caps.monthly),
            (CapKind::Weekly, PeriodKind::Week, caps.weekly),
            (CapKind::Daily, PeriodKind::Day, caps.daily),
        ] {
            let Some(limit) = limit else { continue };
            let period = Period::containing(pk, self.now, tz);
            let spent = self.spend(&period, arm, None, places)?;
            out.push(self.state(scope.clone(), kind, limit, spent, *policy, period));
        }
        Ok(())
    }

    fn state(
        &self,
        scope: Scope,
        kind: CapKind,
        limit: Micros,
        spent: Micros,
        policy: Policy,
        period: Period,
    ) -> CapState {
        let t = if kind == CapKind::Hourly {
            // The burn rate has no grace and no early alert: spend above it
            // (not at it) is a breach, which halts hard_stop and stop arms.
            let p = Policy {
                grace_pct: 100,
                alert_at_pct: 0,
                ..policy
            };
            if spent > limit {
                tier(spent, limit, &p)
            } else {
                Tier::Ok
            }
        } else {
            tier(spent, limit, &policy)
        };
        // The burn rate and the session cap exist to stop runaway work:
        // where a hard_stop arm would refuse gated tools, they halt.
        let t = match (kind, t) {
            (CapKind::Hourly | CapKind::Session, Tier::HardStop) => Tier::Stop,
            (_, t) => t,
        };
        CapState {
            scope,
            kind,
            limit,
            spent,
            policy,
            tier: t,
            period,
        }
    }

    /// Spend in `period` up to now: of one arm (its candidate places,
    /// resolved exactly), of one session, or of everything.
    ///
    /// A calendar period's whole past UTC days come from the ledger's
    /// spend cache when it holds them (priced once, then kept until an
    /// ingest changes one of those days), so a call prices only today's
    /// rows however long the period's history is. The cache splits the
    /// period only at UTC midnights, where the rollup's groups split
    /// anyway: the figure is the same, to the picodollar, as pricing the
    /// whole period.
    pub fn spend(
        &self,
        period: &Period,
        arm: Option<(usize, &[i64])>,
        session: Option<&str>,
        places: &HashMap<i64, crate::ledger::query::Place>,
    ) -> Result<Micros> {
        self.spend_on(period, arm, session, None, places)
    }

    /// [`Self::spend`], of one git branch ('' for none) when `branch` is set.
    fn spend_on(
        &self,
        period: &Period,
        arm: Option<(usize, &[i64])>,
        session: Option<&str>,
        branch: Option<&str>,
        places: &HashMap<i64, crate::ledger::query::Place>,
    ) -> Result<Micros> {
        let window = period.until(self.now + Duration::milliseconds(1));
        let calendar = matches!(
            period.kind,
            PeriodKind::Month | PeriodKind::Week | PeriodKind::Day
        );
        let day_ms = 86_400_000;
        let today_ms = window.end.timestamp_millis().div_euclid(day_ms) * day_ms;
        if calendar
            && session.is_none()
            && branch.is_none()
            && today_ms > window.start.timestamp_millis()
        {
            if let Some(today) = DateTime::from_timestamp_millis(today_ms) {
                return self.spend_cached(&window, today, arm, places);
            }
        }
        Ok(self
            .priced(window.start, window.end, arm, session, branch, places)?
            .to_micros())
    }

    fn spend_cached(
        &self,
        window: &Period,
        today: DateTime<Utc>,
        arm: Option<(usize, &[i64])>,
        places: &HashMap<i64, crate::ledger::query::Place>,
    ) -> Result<Micros> {
        let key = self.cache_key(window, arm);
        let today_ms = today.timestamp_millis();
        let start_ms = window.start.timestamp_millis();
        // One read snapshot for the generation, the cached figure and the
        // rows (unless the caller already holds a transaction).
        let own_tx = self.ledger.begin_read()?;
        let read = (|| -> Result<(i64, bool, Picos, Picos)> {
            let gen = self.ledger.rollup_gen()?;
            let (from_ms, base) = match self.ledger.cached_spend(key)? {
                Some((upto, p)) if upto <= today_ms && upto > start_ms => (upto, p),
                _ => (start_ms, Picos(0)),
            };
            let past = match DateTime::from_timestamp_millis(from_ms) {
                Some(from) if from_ms < today_ms => {
                    base + self.priced(from, today, arm, None, None, places)?
                }
                _ => base,
            };
            let now = self.priced(today, window.end, arm, None, None, places)?;
            Ok((gen, from_ms != today_ms, past, now))
        })();
        if own_tx {
            self.ledger.end_read();
        }
        let (gen, moved, past, now) = read?;
        if moved {
            self.ledger.cache_spend(key, today_ms, past, gen);
        }
        Ok((past + now).to_micros())
    }

    /// What a cached spend depends on besides the ledger's rows: the
    /// scope (and its candidate places), the period, the price table and
    /// the attribution.
    fn cache_key(&self, window: &Period, arm: Option<(usize, &[i64])>) -> i64 {
        let id = format!(
            "{:?}|{}|{:?}|{}|{}|{}",
            window.kind,
            window.start.timestamp_millis(),
            arm,
            self.loaded
                .config
                .arms
                .get(arm.map_or(usize::MAX, |(i, _)| i))
                .map_or("", |a| a.name.as_str()),
            self.loaded.prices().identity(),
            self.loaded.attributor.identity(),
        );
        xxhash_rust::xxh3::xxh3_64(id.as_bytes()) as i64
    }

    /// Priced spend of responses with `from <= timestamp < to`: of one arm,
    /// of one session, or of everything (of one git branch when `branch`
    /// is set).
    fn priced(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        arm: Option<(usize, &[i64])>,
        session: Option<&str>,
        branch: Option<&str>,
        places: &HashMap<i64, crate::ledger::query::Place>,
    ) -> Result<Picos> {
        let filter = Filter {
            places: arm.map(|(_, c)| c),
            session,
            branch,
            ..Filter::default()
        };
        let groups = self.ledger.groups(from, to, &filter)?;
        let mut pricer = Pricer::new(self.loaded.prices());
        let Some((i, _)) = arm else {
            return Ok(groups.iter().map(|g| pricer.cost(g)).sum::<Picos>());
        };
        // Places without a cwd are the arm's only if their session's cwd
        // (or, failing that, their folder) says so.
        let session_cwds = self.ledger.session_cwds(&groups, places)?;
        let resolver = Resolver {
            attributor: &self.loaded.attributor,
            places,
            session_cwds: &session_cwds,
        };
        Ok(groups
            .iter()
            .filter(|g| resolver.owner(g.place_id, &g.session_id) == Owner::Arm(i))
            .map(|g| pricer.cost(g))
            .sum::<Picos>())
    }
}
