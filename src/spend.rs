//! Spend: the one engine that turns ledger groups into priced spend per
//! owner ([`Engine`]), with the rules it applies: who owns a group
//! ([`Resolver`]) and what it costs ([`Pricer`]). `check`, `status`,
//! `statusline`, `report`, `alerts` and `init` all read spend through it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};

use crate::attribution::Attributor;
use crate::budget::{Period, PeriodKind};
use crate::ledger::query::{Filter, Group, Place};
use crate::ledger::{Places, Result, Store};
use crate::money::{Micros, Picos};
use crate::pricing::{cost, PriceTable};
use crate::transcript::Usage;

/// Who a group of spend belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    Arm(usize),
    Unattributed,
}

/// Decides owners: by the response's cwd; failing that by its session's
/// cwd; failing that by the transcript folder name.
pub struct Resolver<'a> {
    pub attributor: &'a Attributor,
    pub places: &'a HashMap<i64, Place>,
    pub session_cwds: &'a HashMap<String, String>,
}

impl Resolver<'_> {
    pub fn owner(&self, place_id: i64, session_id: &str) -> Owner {
        let Some(place) = self.places.get(&place_id) else {
            return Owner::Unattributed;
        };
        let arm = if !place.cwd.is_empty() {
            self.attributor.by_cwd(&place.cwd).or_else(|| {
                place
                    .real_cwd
                    .as_deref()
                    .and_then(|r| self.attributor.by_cwd(r))
            })
        } else if let Some(cwd) = self.session_cwds.get(session_id) {
            self.attributor.by_cwd(cwd)
        } else {
            self.attributor.by_project(&place.project)
        };
        arm.map_or(Owner::Unattributed, Owner::Arm)
    }

    /// Place ids whose spend may belong to `arm`: those whose cwd it owns,
    /// and those without a cwd (resolved per session later).
    pub fn candidate_places(&self, arm: usize) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .places
            .iter()
            .filter(|(id, p)| p.cwd.is_empty() || self.owner(**id, "") == Owner::Arm(arm))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }
}

/// Sums of one row of a report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub cost: Picos,
    pub messages: i64,
    pub usage: Usage,
    pub sessions: BTreeSet<String>,
    /// The part of `cost` and `usage` from requests Claude Code counted but
    /// never wrote as responses (its `cost-state` totals).
    pub unwritten_cost: Picos,
    pub unwritten: Usage,
}

impl Tally {
    pub fn add(&mut self, g: &Group, cost: Picos) {
        self.cost += cost;
        self.messages += g.messages;
        self.usage.add(&g.usage);
        if g.messages > 0 && !g.session_id.is_empty() {
            self.sessions.insert(g.session_id.clone());
        }
        if g.unwritten {
            self.unwritten_cost += cost;
            self.unwritten.add(&g.usage);
        }
    }

    pub fn merge(&mut self, o: &Tally) {
        self.cost += o.cost;
        self.messages += o.messages;
        self.usage.add(&o.usage);
        self.sessions.extend(o.sessions.iter().cloned());
        self.unwritten_cost += o.unwritten_cost;
        self.unwritten.add(&o.unwritten);
    }

    pub fn spent(&self) -> Micros {
        self.cost.to_micros()
    }
}

/// Prices groups and remembers the models the table does not know.
pub struct Pricer<'a> {
    pub table: &'a PriceTable,
    pub unpriced: BTreeMap<String, Tally>,
}

impl<'a> Pricer<'a> {
    pub fn new(table: &'a PriceTable) -> Pricer<'a> {
        Pricer {
            table,
            unpriced: BTreeMap::new(),
        }
    }

    /// The cost of a group. A model the table does not know is priced at the
    /// dearest known rates (never $0) and listed in `unpriced`.
    pub fn cost(&mut self, g: &Group) -> Picos {
        let (prices, known) = self.table.for_budget(&g.model);
        let row = prices.at(g.day);
        let c = cost(
            row,
            &g.usage,
            g.class,
            g.fast,
            g.us_geo,
            self.table.web_search,
        );
        if !known {
            self.unpriced.entry(g.model.clone()).or_default().add(g, c);
        }
        c
    }
}

/// Spend of a window per owner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ByOwner {
    /// Per arm, in config order.
    pub arms: Vec<Tally>,
    pub unattributed: Tally,
}

impl ByOwner {
    /// Every owner's spend together.
    pub fn all(&self) -> Micros {
        self.arms
            .iter()
            .fold(self.unattributed.cost, |a, t| a + t.cost)
            .to_micros()
    }
}

/// The spend engine: reads a window's groups from a ledger, resolves each
/// group's owner and prices it. Windows are cut at `now` (a figure "as of
/// --now" ignores later records). Places are read once per engine.
pub struct Engine<'a> {
    ledger: &'a dyn Store,
    attributor: &'a Attributor,
    pricer: Pricer<'a>,
    now: DateTime<Utc>,
    places: Option<Places>,
    /// The last arm's candidate places.
    candidates: Option<(usize, Vec<i64>)>,
}

impl<'a> Engine<'a> {
    pub fn new(
        ledger: &'a dyn Store,
        attributor: &'a Attributor,
        prices: &'a PriceTable,
        now: DateTime<Utc>,
    ) -> Engine<'a> {
        Engine {
            ledger,
            attributor,
            pricer: Pricer::new(prices),
            now,
            places: None,
            candidates: None,
        }
    }

    /// The part of `period` up to and including `now`.
    pub fn window(&self, period: &Period) -> Period {
        period.until(self.now + Duration::milliseconds(1))
    }

    /// Every place, read once.
    pub fn places(&mut self) -> Result<&HashMap<i64, Place>> {
        if self.places.is_none() {
            self.places = Some(self.ledger.places()?);
        }
        Ok(self.places.as_ref().expect("just read"))
    }

    /// Calls `f` with each group of `[from, to)` that `filter` selects and
    /// whose owner is `wanted`, its owner and its cost (only those groups
    /// are priced, and listed in [`Engine::unpriced`]).
    pub fn each(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        filter: &Filter<'_>,
        wanted: &dyn Fn(Owner) -> bool,
        mut f: impl FnMut(&Group, Owner, Picos),
    ) -> Result<()> {
        let groups = self.ledger.groups(from, to, filter)?;
        self.places()?;
        let places = self.places.as_ref().expect("read above");
        // Places without a cwd are owned by their session's cwd (or,
        // failing that, their folder).
        let session_cwds = self.ledger.session_cwds(&groups, places)?;
        let resolver = Resolver {
            attributor: self.attributor,
            places,
            session_cwds: &session_cwds,
        };
        for g in &groups {
            let owner = resolver.owner(g.place_id, &g.session_id);
            if !wanted(owner) {
                continue;
            }
            let c = self.pricer.cost(g);
            f(g, owner, c);
        }
        Ok(())
    }

    /// Spend of `period` (up to now) per owner.
    pub fn by_owner(&mut self, period: &Period, arms: usize) -> Result<ByOwner> {
        let w = self.window(period);
        let mut out = ByOwner {
            arms: vec![Tally::default(); arms],
            unattributed: Tally::default(),
        };
        self.each(
            w.start,
            w.end,
            &Filter::default(),
            &|_| true,
            |g, owner, c| match owner {
                Owner::Arm(i) if i < out.arms.len() => out.arms[i].add(g, c),
                _ => out.unattributed.add(g, c),
            },
        )?;
        Ok(out)
    }

    /// Spend of one arm in `period` (up to now): only the arm's candidate
    /// places are read, each group's owner resolved exactly.
    pub fn of_arm(&mut self, period: &Period, arm: usize) -> Result<Micros> {
        self.of_arm_on(period, arm, None)
    }

    /// [`Engine::of_arm`], of one git branch ('' for none) when `branch` is
    /// set.
    pub fn of_arm_on(
        &mut self,
        period: &Period,
        arm: usize,
        branch: Option<&str>,
    ) -> Result<Micros> {
        let w = self.window(period);
        let candidates = self.candidates(arm)?;
        let filter = Filter {
            places: Some(&candidates),
            branch,
            ..Filter::default()
        };
        let mut sum = Picos(0);
        let mine = |o: Owner| o == Owner::Arm(arm);
        self.each(w.start, w.end, &filter, &mine, |_, _, c| sum += c)?;
        Ok(sum.to_micros())
    }

    /// Spend of a calendar period (day, week, month; up to now) of one arm
    /// (`arm`: its index and name) or of everything. Its whole past UTC
    /// days come from the ledger's spend cache when it holds them (priced
    /// once, then kept until an ingest changes one of those days), so a
    /// call prices only today's rows however long the period's history is.
    /// The cache splits the period only at UTC midnights, where the
    /// ledger's groups split anyway: the figure is the same, to the
    /// picodollar, as pricing the whole period.
    pub fn of_calendar(&mut self, period: &Period, arm: Option<(usize, &str)>) -> Result<Micros> {
        let window = self.window(period);
        let calendar = matches!(
            period.kind,
            PeriodKind::Month | PeriodKind::Week | PeriodKind::Day
        );
        let day_ms = 86_400_000;
        let today_ms = window.end.timestamp_millis().div_euclid(day_ms) * day_ms;
        let today = DateTime::from_timestamp_millis(today_ms)
            .filter(|_| calendar && today_ms > window.start.timestamp_millis());
        let Some(today) = today else {
            return match arm {
                Some((i, _)) => self.of_arm(period, i),
                None => self.of_all(period, None),
            };
        };
        let candidates = match arm {
            Some((i, _)) => Some(self.candidates(i)?),
            None => None,
        };
        let key = self.cache_key(&window, arm, candidates.as_deref());
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
                Some(from) if from_ms < today_ms => base + self.priced(from, today, arm)?,
                _ => base,
            };
            let now = self.priced(today, window.end, arm)?;
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

    /// Priced spend of `[from, to)`: of one arm (its candidate places,
    /// owners resolved exactly) or of everything.
    fn priced(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        arm: Option<(usize, &str)>,
    ) -> Result<Picos> {
        let mut sum = Picos(0);
        match arm {
            Some((i, _)) => {
                let candidates = self.candidates(i)?;
                let filter = Filter {
                    places: Some(&candidates),
                    ..Filter::default()
                };
                let mine = |o: Owner| o == Owner::Arm(i);
                self.each(from, to, &filter, &mine, |_, _, c| sum += c)?;
            }
            None => {
                for g in self.ledger.groups(from, to, &Filter::default())? {
                    sum += self.pricer.cost(&g);
                }
            }
        }
        Ok(sum)
    }

    /// What a cached spend depends on besides the ledger's rows: the
    /// scope (and its candidate places), the period, the price table and
    /// the attribution.
    fn cache_key(
        &self,
        window: &Period,
        arm: Option<(usize, &str)>,
        candidates: Option<&[i64]>,
    ) -> i64 {
        let id = format!(
            "{:?}|{}|{:?}|{}|{}|{}",
            window.kind,
            window.start.timestamp_millis(),
            arm.map(|(i, _)| i).zip(candidates),
            arm.map_or("", |(_, name)| name),
            self.pricer.table.identity(),
            self.attributor.identity(),
        );
        xxhash_rust::xxh3::xxh3_64(id.as_bytes()) as i64
    }

    /// Spend of everything in `period` (up to now), or of one session:
    /// nothing is attributed.
    pub fn of_all(&mut self, period: &Period, session: Option<&str>) -> Result<Micros> {
        let w = self.window(period);
        let filter = Filter {
            session,
            ..Filter::default()
        };
        let groups = self.ledger.groups(w.start, w.end, &filter)?;
        Ok(groups
            .iter()
            .map(|g| self.pricer.cost(g))
            .sum::<Picos>()
            .to_micros())
    }

    /// Place ids whose spend may belong to `arm` (see
    /// [`Resolver::candidate_places`]), remembered for the last arm asked.
    pub fn candidates(&mut self, arm: usize) -> Result<Vec<i64>> {
        self.places()?;
        let c = match self.candidates.take() {
            Some((a, c)) if a == arm => c,
            _ => self.candidate_places(arm),
        };
        self.candidates = Some((arm, c.clone()));
        Ok(c)
    }

    fn candidate_places(&self, arm: usize) -> Vec<i64> {
        let empty = HashMap::new();
        let places = self.places.as_ref().expect("read by the caller");
        Resolver {
            attributor: self.attributor,
            places,
            session_cwds: &empty,
        }
        .candidate_places(arm)
    }

    /// The models the price table did not know, with what they were
    /// priced as.
    pub fn unpriced(self) -> BTreeMap<String, Tally> {
        self.pricer.unpriced
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Action, Arm, Caps, Policy};
    use crate::pricing::PromptClass;
    use chrono::NaiveDate;

    fn arm(name: &str, path: &str) -> Arm {
        Arm {
            name: name.into(),
            paths: vec![path.into()],
            caps: Caps::default(),
            policy: Policy {
                grace_pct: 110,
                action: Action::Warn,
                alert_at_pct: 80,
            },
            branch_caps: Vec::new(),
        }
    }

    #[test]
    fn owners_fall_back_from_cwd_to_session_to_folder() {
        let arms = vec![arm("acme", "/x/acme"), arm("beta", "/x/beta")];
        let attributor = Attributor::new(&arms);
        let places: HashMap<i64, Place> = [
            (
                1,
                Place {
                    cwd: "/x/acme/api".into(),
                    project: "-x-beta".into(),
                    real_cwd: None,
                },
            ),
            (
                2,
                Place {
                    cwd: String::new(),
                    project: "-x-beta".into(),
                    real_cwd: None,
                },
            ),
            (
                3,
                Place {
                    cwd: "/elsewhere".into(),
                    project: "-x-acme".into(),
                    real_cwd: None,
                },
            ),
        ]
        .into();
        let session_cwds: HashMap<String, String> =
            [("s-acme".to_string(), "/x/acme".to_string())].into();
        let r = Resolver {
            attributor: &attributor,
            places: &places,
            session_cwds: &session_cwds,
        };
        assert_eq!(r.owner(1, "s"), Owner::Arm(0)); // cwd wins over folder
        assert_eq!(r.owner(2, "s-acme"), Owner::Arm(0)); // the session's cwd
        assert_eq!(r.owner(2, "unknown"), Owner::Arm(1)); // the folder name
        assert_eq!(r.owner(3, "s"), Owner::Unattributed); // a cwd no arm owns
        assert_eq!(r.owner(99, "s"), Owner::Unattributed);
        assert_eq!(r.candidate_places(0), vec![1, 2]);
    }

    #[test]
    fn unknown_models_cost_the_dearest_rate_and_are_listed() {
        let table = PriceTable::new(&[]);
        let mut p = Pricer::new(&table);
        let g = Group {
            day: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            place_id: 1,
            session_id: "s".into(),
            branch: String::new(),
            model: "claude-opus-9".into(),
            fast: false,
            us_geo: false,
            class: PromptClass(0),
            messages: 1,
            usage: Usage {
                input: 1_000_000,
                ..Default::default()
            },
            unwritten: false,
        };
        // $15 per MTok input: the dearest known input rate.
        assert_eq!(p.cost(&g).to_micros(), Micros(15_000_000));
        assert_eq!(p.unpriced["claude-opus-9"].messages, 1);
    }

    /// A ledger backend other than SQLite: groups and places in memory.
    /// Proves the engine needs nothing but [`Store`].
    struct MemoryStore {
        groups: Vec<Group>,
        places: HashMap<i64, Place>,
        session_cwds: HashMap<String, String>,
    }

    impl Store for MemoryStore {
        fn groups(
            &self,
            from: DateTime<Utc>,
            to: DateTime<Utc>,
            filter: &Filter<'_>,
        ) -> Result<Vec<Group>> {
            let day = |d: NaiveDate| d.and_hms_opt(12, 0, 0).unwrap().and_utc();
            Ok(self
                .groups
                .iter()
                .filter(|g| day(g.day) >= from && day(g.day) < to)
                .filter(|g| filter.places.is_none_or(|p| p.contains(&g.place_id)))
                .filter(|g| filter.session.is_none_or(|s| s == g.session_id))
                .cloned()
                .collect())
        }
        fn places(&self) -> Result<Places> {
            Ok(std::sync::Arc::new(self.places.clone()))
        }
        fn session_cwds(
            &self,
            _: &[Group],
            _: &HashMap<i64, Place>,
        ) -> Result<HashMap<String, String>> {
            Ok(self.session_cwds.clone())
        }
        fn first_cwds(&self, _: &[&str]) -> Result<HashMap<String, String>> {
            Ok(self.session_cwds.clone())
        }
        fn session_cwd(&self, s: &str) -> Result<Option<String>> {
            Ok(self.session_cwds.get(s).cloned())
        }
        fn session_branch(&self, _: &str) -> Result<Option<String>> {
            Ok(None)
        }
        fn branches(&self, _: &[i64]) -> Result<Vec<String>> {
            Ok(Vec::new())
        }
        fn time_span(&self) -> Result<Option<(DateTime<Utc>, DateTime<Utc>)>> {
            Ok(None)
        }
        fn skipped_lines(&self) -> Result<u64> {
            Ok(0)
        }
        fn history_read(&self) -> Result<bool> {
            Ok(true)
        }
        fn halt(&self, _: &str) -> Result<Option<crate::ledger::halts::Halt>> {
            Ok(None)
        }
        fn record_halt(&self, _: &str, _: &str, _: &str, _: i64) -> Result<()> {
            Ok(())
        }
        fn clear_halt(&self, _: &str) -> Result<()> {
            Ok(())
        }
        fn notice_given(&self, _: &crate::ledger::notices::NoticeKey<'_>) -> Result<bool> {
            Ok(false)
        }
        fn record_notice(&self, _: &crate::ledger::notices::NoticeKey<'_>, _: i64) -> Result<bool> {
            Ok(true)
        }
        fn begin_read(&self) -> Result<bool> {
            Ok(false)
        }
        fn end_read(&self) {}
        fn rollup_gen(&self) -> Result<i64> {
            Ok(0)
        }
        fn cached_spend(&self, _: i64) -> Result<Option<(i64, Picos)>> {
            Ok(None) // no cache: every figure is priced from the groups
        }
        fn cache_spend(&self, _: i64, _: i64, _: Picos, _: i64) {}
    }

    #[test]
    fn the_engine_prices_and_attributes_through_any_store() {
        let arms = vec![arm("acme", "/x/acme"), arm("beta", "/x/beta")];
        let attributor = Attributor::new(&arms);
        let table = PriceTable::new(&[]);
        let place = |cwd: &str, project: &str| Place {
            cwd: cwd.into(),
            project: project.into(),
            real_cwd: None,
        };
        // claude-haiku-4-5: $1 per MTok input.
        let group = |day: u32, place_id: i64, session: &str, input: u64| Group {
            day: NaiveDate::from_ymd_opt(2026, 11, day).unwrap(),
            place_id,
            session_id: session.into(),
            branch: String::new(),
            model: "claude-haiku-4-5".into(),
            fast: false,
            us_geo: false,
            class: PromptClass(0),
            messages: 1,
            usage: Usage {
                input,
                ..Default::default()
            },
            unwritten: false,
        };
        let store = MemoryStore {
            groups: vec![
                group(2, 1, "s1", 1_000_000),  // acme by cwd: $1
                group(3, 2, "s2", 2_000_000),  // no cwd, session in beta: $2
                group(3, 3, "s3", 4_000_000),  // a cwd no arm owns: $4
                group(20, 1, "s1", 8_000_000), // acme, after now
            ],
            places: [
                (1, place("/x/acme/api", "-x-acme-api")),
                (2, place("", "-elsewhere")),
                (3, place("/tmp", "-tmp")),
            ]
            .into(),
            session_cwds: [("s2".to_string(), "/x/beta".to_string())].into(),
        };
        let now = "2026-11-10T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let month = Period::containing(crate::budget::PeriodKind::Month, now, chrono_tz::Tz::UTC);
        let mut e = Engine::new(&store, &attributor, &table, now);
        let by = e.by_owner(&month, arms.len()).unwrap();
        let usd = |d: i64| Micros(d * Micros::PER_DOLLAR);
        assert_eq!(by.arms[0].spent(), usd(1));
        assert_eq!(by.arms[1].spent(), usd(2));
        assert_eq!(by.unattributed.spent(), usd(4));
        assert_eq!(by.all(), usd(7));
        assert_eq!(e.of_arm(&month, 1).unwrap(), usd(2));
        assert_eq!(e.of_calendar(&month, Some((0, "acme"))).unwrap(), usd(1));
        assert_eq!(e.of_calendar(&month, None).unwrap(), usd(7));
        assert_eq!(e.of_all(&month, Some("s1")).unwrap(), usd(1));
        assert!(e.unpriced().is_empty());
    }
}
