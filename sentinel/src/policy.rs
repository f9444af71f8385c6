//! The response policy: what Sentinel does with a finding, by confidence band, as the vision
//! sets it. From 0.50 log (publish `threat.detected`), from 0.70 alert and throttle the source,
//! from 0.85 block with a 403 naming the agent, above 0.95 block and escalate to the threat
//! analyzer. Bands can differ per agent and per route prefix; dry-run only logs.

use std::time::Duration;

/// What to do with one finding. Ordered: a later action includes the earlier ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Below the log band: nothing.
    Ignore,
    /// Publish `threat.detected`.
    Log,
    /// Publish, and throttle the source for a while.
    Alert,
    /// Answer 403 naming the agent, and alert.
    Block,
    /// Block, and hand the finding to the analyzer's incident commander at once.
    Escalate,
}

impl Action {
    /// The word in events (`logged`, `alerted`, `blocked`, `escalated`).
    pub fn past_tense(self) -> &'static str {
        match self {
            Action::Ignore => "ignored",
            Action::Log => "logged",
            Action::Alert => "alerted",
            Action::Block => "blocked",
            Action::Escalate => "escalated",
        }
    }
}

/// Lower bounds of the confidence bands (inclusive, except escalation: above).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bands {
    /// Log from here.
    pub log: f32,
    /// Alert and throttle from here.
    pub alert: f32,
    /// Block from here.
    pub block: f32,
    /// Escalate above this.
    pub escalate: f32,
}

impl Default for Bands {
    fn default() -> Self {
        Bands {
            log: 0.50,
            alert: 0.70,
            block: 0.85,
            escalate: 0.95,
        }
    }
}

impl Bands {
    /// Bands that log everything from `log` but never alert, block or escalate.
    pub fn log_only(log: f32) -> Self {
        Bands {
            log,
            alert: f32::INFINITY,
            block: f32::INFINITY,
            escalate: f32::INFINITY,
        }
    }

    /// The action for `confidence`.
    pub fn action(&self, confidence: f32) -> Action {
        if confidence > self.escalate {
            Action::Escalate
        } else if confidence >= self.block {
            Action::Block
        } else if confidence >= self.alert {
            Action::Alert
        } else if confidence >= self.log {
            Action::Log
        } else {
            Action::Ignore
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    agent: Option<String>,
    prefix: Option<String>,
    bands: Bands,
}

/// The bands for every agent and route, and the switches around them.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    default: Bands,
    rules: Vec<Rule>,
    /// Only log: never answer 403 or 429, never throttle or escalate.
    pub dry_run: bool,
    /// How long an alert throttles its source.
    pub throttle_for: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            default: Bands::default(),
            rules: Vec::new(),
            dry_run: false,
            throttle_for: Duration::from_secs(60),
        }
    }
}

impl Policy {
    /// The vision's bands for everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the default bands.
    pub fn with_default(mut self, bands: Bands) -> Self {
        self.default = bands;
        self
    }

    /// Bands for one agent's findings on every route.
    pub fn for_agent(mut self, agent: &str, bands: Bands) -> Self {
        self.rules.push(Rule {
            agent: Some(agent.to_owned()),
            prefix: None,
            bands,
        });
        self
    }

    /// Bands for every agent's findings on paths starting with `prefix`.
    pub fn for_route(mut self, prefix: &str, bands: Bands) -> Self {
        self.rules.push(Rule {
            agent: None,
            prefix: Some(prefix.to_owned()),
            bands,
        });
        self
    }

    /// Bands for one agent on paths starting with `prefix`.
    pub fn for_agent_on_route(mut self, agent: &str, prefix: &str, bands: Bands) -> Self {
        self.rules.push(Rule {
            agent: Some(agent.to_owned()),
            prefix: Some(prefix.to_owned()),
            bands,
        });
        self
    }

    /// Turns dry-run on or off.
    pub fn dry_run(mut self, on: bool) -> Self {
        self.dry_run = on;
        self
    }

    /// The bands for `agent` on `path`: the rule with the longest matching route prefix wins,
    /// an agent-specific rule beats a general one of the same prefix, and with no rule the
    /// default applies.
    pub fn bands(&self, agent: &str, path: &str) -> Bands {
        let mut best: Option<((usize, bool), Bands)> = None;
        for rule in &self.rules {
            if rule.agent.as_deref().is_some_and(|a| a != agent) {
                continue;
            }
            let matched = match rule.prefix.as_deref() {
                Some(prefix) if path.starts_with(prefix) => prefix.len() + 1,
                Some(_) => continue,
                None => 0,
            };
            let key = (matched, rule.agent.is_some());
            if best.as_ref().is_none_or(|(k, _)| key >= *k) {
                best = Some((key, rule.bands));
            }
        }
        best.map_or(self.default, |(_, bands)| bands)
    }

    /// The action for a finding, dry-run applied (at most [`Action::Log`]).
    pub fn action(&self, agent: &str, path: &str, confidence: f32) -> Action {
        let action = self.bands(agent, path).action(confidence);
        if self.dry_run {
            action.min(Action::Log)
        } else {
            action
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_follow_the_vision() {
        let p = Policy::new();
        let check = |c: f32, want: Action| assert_eq!(p.action("X", "/", c), want, "{c}");
        check(0.2, Action::Ignore);
        check(0.5, Action::Log);
        check(0.7, Action::Alert);
        check(0.85, Action::Block);
        check(0.95, Action::Block);
        check(0.96, Action::Escalate);
        assert_eq!(p.dry_run(true).action("X", "/", 0.99), Action::Log);
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let strict = Bands {
            log: 0.1,
            alert: 0.2,
            block: 0.3,
            escalate: 0.9,
        };
        let p = Policy::new()
            .for_agent("SQLGuard", Bands::log_only(0.5))
            .for_route("/admin", strict)
            .for_agent_on_route("SQLGuard", "/admin/open", Bands::log_only(0.9));
        assert_eq!(p.action("SQLGuard", "/rest/v1/x", 0.99), Action::Log);
        assert_eq!(p.action("APIWatch", "/rest/v1/x", 0.9), Action::Block);
        assert_eq!(p.action("SQLGuard", "/admin/users", 0.4), Action::Block);
        assert_eq!(p.action("SQLGuard", "/admin/open/x", 0.99), Action::Log);
        assert_eq!(p.action("SQLGuard", "/admin/open/x", 0.5), Action::Ignore);
    }
}
