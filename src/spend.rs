//! Spend: ledger groups attributed to arms and priced. Pure: groups,
//! places and config in, numbers out.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::attribution::Attributor;
use crate::ledger::query::{Group, Place};
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
}
