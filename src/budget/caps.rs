//! Every cap that applies to an arm (and the team total) at `now`, with
//! its spend and tier: what `check`, `status` and `alerts` decide from.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use super::{hard_stop_at, tier, Period, PeriodKind, Scope, Tier};
use crate::config::{Caps, Policy};
use crate::ledger::{Result, Store};
use crate::money::Micros;
use crate::spend::Engine;
use crate::Loaded;

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

    /// What a warning about this cap is remembered by, so that it is said
    /// once per scope, cap, period and tier: the scope (a session cap's
    /// names its session) and the period's first instant in `tz`. The burn
    /// rate's window moves with every call, so it is keyed by the clock
    /// hour of `now` instead.
    pub fn notice_scope_and_start(
        &self,
        now: DateTime<Utc>,
        tz: Tz,
        session: Option<&str>,
    ) -> (String, String) {
        let key_start = match self.kind {
            CapKind::Hourly => {
                now - Duration::milliseconds(now.timestamp_millis().rem_euclid(3_600_000))
            }
            _ => self.period.start,
        };
        let scope = match (self.kind, session) {
            (CapKind::Session, Some(s)) => format!("{}/{s}", self.scope.owner()),
            (CapKind::Branch, _) => self.scope.name().to_owned(), // <arm>@<branch>
            _ => self.scope.owner().to_owned(),
        };
        (scope, key_start.with_timezone(&tz).to_rfc3339())
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

/// What a set of caps decides for a gated tool or a prompt.
#[derive(Debug, Clone, Copy)]
pub enum Verdict<'a> {
    /// The agent is halted (the kill switch): this cap.
    Stop(&'a CapState),
    /// Gated tools and prompts are refused: this cap.
    Block(&'a CapState),
    /// Allowed, with a warning about the first cap at the worst tier.
    Warn(&'a CapState),
    Allow,
}

impl Verdict<'_> {
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Stop(_) => "stop",
            Verdict::Block(_) => "block",
            Verdict::Warn(_) => "warn",
            Verdict::Allow => "allow",
        }
    }
}

/// The verdict of `caps`: a halt before a block before a warning.
pub fn verdict(caps: &[CapState]) -> Verdict<'_> {
    if let Some(c) = halting(caps) {
        return Verdict::Stop(c);
    }
    if let Some(c) = blocking(caps) {
        return Verdict::Block(c);
    }
    let worst = worst_tier(caps);
    match caps.iter().find(|c| c.tier == worst) {
        Some(c) if worst >= Tier::Alert => Verdict::Warn(c),
        _ => Verdict::Allow,
    }
}

/// The worst tier among `caps` (ok when there are none).
pub fn worst_tier(caps: &[CapState]) -> Tier {
    caps.iter().map(|c| c.tier).max().unwrap_or(Tier::Ok)
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
    pub ledger: &'a dyn Store,
    pub now: DateTime<Utc>,
}

impl<'a> Evaluator<'a> {
    /// Every cap of `arm` (if any), the session cap for `session` (if the
    /// arm has one) and the team total's caps.
    pub fn caps(&self, arm: Option<usize>, session: Option<&str>) -> Result<Vec<CapState>> {
        self.caps_of(arm, session, Which::All)
    }

    /// The spend engine this evaluator reads through.
    pub fn engine(&self) -> Engine<'a> {
        Engine::new(
            self.ledger,
            self.loaded.attributor(),
            self.loaded.prices(),
            self.now,
        )
    }

    /// The caps `which` asks for (see [`Which`]).
    pub fn caps_of(
        &self,
        arm: Option<usize>,
        session: Option<&str>,
        which: Which,
    ) -> Result<Vec<CapState>> {
        let cfg = &self.loaded.config;
        let wanted = |caps: &Caps, policy: &Policy| {
            which == Which::All || crate::config::can_halt(caps, policy)
        };
        let arm = arm.filter(|&i| which == Which::All || cfg.arms[i].can_halt());
        let total = cfg.total.as_ref().filter(|t| wanted(&t.caps, &t.policy));
        if arm.is_none() && total.is_none() {
            return Ok(Vec::new());
        }
        let mut engine = self.engine();
        let mut out = Vec::new();
        if let Some(i) = arm {
            let a = &cfg.arms[i];
            let scope = Scope::Arm(a.name.clone());
            // A hard_stop arm halts only at its session cap and burn rate.
            let calendar = which == Which::All || a.policy.action == crate::config::Action::Stop;
            if calendar {
                self.calendar_caps(&mut engine, &mut out, &scope, &a.caps, &a.policy, Some(i))?;
            }
            if let (Some(limit), Some(s)) = (a.caps.session, session) {
                let whole = Period::whole();
                let spent = engine.of_all(&whole, Some(s))?;
                out.push(state(
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
                let spent = engine.of_arm(&hour, i)?;
                out.push(state(
                    scope.clone(),
                    CapKind::Hourly,
                    limit,
                    spent,
                    a.policy,
                    hour,
                ));
            }
        }
        if let Some(t) = total {
            self.calendar_caps(
                &mut engine,
                &mut out,
                &Scope::Total,
                &t.caps,
                &t.policy,
                None,
            )?;
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
        let whole = Period::whole();
        let spent = self.engine().of_arm_on(&whole, i, Some(branch))?;
        Ok(Some(state(
            Scope::branch_of(&a.name, branch),
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
        let mut engine = self.engine();
        let candidates = engine.candidates(arm)?;
        self.ledger.branches(&candidates)
    }

    fn calendar_caps(
        &self,
        engine: &mut Engine<'_>,
        out: &mut Vec<CapState>,
        scope: &Scope,
        caps: &Caps,
        policy: &Policy,
        arm: Option<usize>,
    ) -> Result<()> {
        let tz = self.loaded.config.timezone;
        for (kind, pk, limit) in [
            (CapKind::Monthly, PeriodKind::Month, caps.monthly),
            (CapKind::Weekly, PeriodKind::Week, caps.weekly),
            (CapKind::Daily, PeriodKind::Day, caps.daily),
        ] {
            let Some(limit) = limit else { continue };
            let period = Period::containing(pk, self.now, tz);
            let named = arm.map(|i| (i, self.loaded.config.arms[i].name.as_str()));
            let spent = engine.of_calendar(&period, named)?;
            out.push(state(scope.clone(), kind, limit, spent, *policy, period));
        }
        Ok(())
    }
}

/// A cap's state from its spend. The burn rate has no grace and no early
/// alert: spend above it (not at it) is a breach. The burn rate and the
/// session cap exist to stop runaway work: where a hard_stop arm would
/// refuse gated tools, they halt.
fn state(
    scope: Scope,
    kind: CapKind,
    limit: Micros,
    spent: Micros,
    policy: Policy,
    period: Period,
) -> CapState {
    let t = if kind == CapKind::Hourly {
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
