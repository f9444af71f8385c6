//! DataFlow: how much data each identity takes out, against its own moving baseline. A
//! response far above what the identity usually reads (rows or bytes), or a full-table read
//! by an identity that normally reads a few rows, is flagged as possible exfiltration.
//!
//! Rows come from PostgREST's `Content-Range` (MagGate sets it), bytes from `Content-Length`.
//! Anonymous callers are tracked per address. Baselines are exponentially weighted means and
//! variances, so memory is constant per identity and old habits fade.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::agent::{Agent, Finding, ResponseView, ThreatKind};

/// The agent's name.
pub const NAME: &str = "DataFlow";

/// DataFlow's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DataFlowConfig {
    /// Responses an identity needs before its baseline is trusted.
    pub warm_up: u32,
    /// Weight of each new response in the baseline (0..1).
    pub alpha: f64,
    /// A response this many times the baseline mean (and beyond `sigmas` deviations) spikes.
    pub factor: f64,
    /// Standard deviations above the mean that make a spike.
    pub sigmas: f64,
    /// A read of the whole table (`Content-Range: 0-N/N+1`) of at least this many rows...
    pub full_table_rows: u64,
    /// ...by an identity whose baseline is under this many rows is flagged.
    pub few_rows: f64,
}

impl Default for DataFlowConfig {
    fn default() -> Self {
        DataFlowConfig {
            warm_up: 20,
            alpha: 0.05,
            factor: 10.0,
            sigmas: 6.0,
            full_table_rows: 500,
            few_rows: 20.0,
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Baseline {
    n: u32,
    mean: f64,
    var: f64,
}

impl Baseline {
    fn spikes(&self, value: f64, config: &DataFlowConfig) -> bool {
        self.n >= config.warm_up
            && value > config.factor * self.mean.max(1.0)
            && value > self.mean + config.sigmas * self.var.sqrt()
    }

    fn add(&mut self, value: f64, alpha: f64) {
        if self.n == 0 {
            self.mean = value;
        } else {
            let diff = value - self.mean;
            self.mean += alpha * diff;
            self.var = (1.0 - alpha) * (self.var + alpha * diff * diff);
        }
        self.n = self.n.saturating_add(1);
    }
}

#[derive(Debug, Default)]
struct Usage {
    rows: Baseline,
    bytes: Baseline,
}

/// The DataFlow agent.
#[derive(Debug, Default)]
pub struct DataFlow {
    config: DataFlowConfig,
    usage: Mutex<HashMap<String, Usage>>,
}

impl DataFlow {
    /// DataFlow with these settings.
    pub fn new(config: DataFlowConfig) -> Self {
        DataFlow {
            config,
            usage: Mutex::default(),
        }
    }
}

/// Whether a `Content-Range` says the response holds the whole table (`0-99/100`).
fn whole_table(view: &ResponseView<'_>, rows: u64) -> bool {
    view.total.is_some_and(|total| total == rows)
}

impl Agent for DataFlow {
    fn name(&self) -> &'static str {
        NAME
    }

    fn watches_responses(&self) -> bool {
        true
    }

    fn on_response(&self, response: &ResponseView<'_>, findings: &mut Vec<Finding>) {
        if !(200..300).contains(&response.status)
            || (response.rows.is_none() && response.bytes.is_none())
        {
            return;
        }
        let who = match &response.identity {
            Some(id) => id.clone(),
            None => format!("ip:{}", response.peer),
        };
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        if usage.len() >= 16_384 && !usage.contains_key(&who) {
            // Forget the identities with the thinnest history first.
            usage.retain(|_, u| u.rows.n.max(u.bytes.n) >= self.config.warm_up);
        }
        let entry = usage.entry(who.clone()).or_default();
        let mut reasons = Vec::new();
        if let Some(rows) = response.rows {
            let value = rows as f64;
            if entry.rows.spikes(value, &self.config) {
                reasons.push(format!(
                    "{rows} rows against a usual {:.0}",
                    entry.rows.mean
                ));
            } else if rows >= self.config.full_table_rows
                && whole_table(response, rows)
                && entry.rows.n >= self.config.warm_up
                && entry.rows.mean < self.config.few_rows
            {
                reasons.push(format!(
                    "full-table read of {rows} rows by an identity that usually reads {:.0}",
                    entry.rows.mean
                ));
            }
            entry.rows.add(value, self.config.alpha);
        }
        if let Some(bytes) = response.bytes {
            let value = bytes as f64;
            if entry.bytes.spikes(value, &self.config) {
                reasons.push(format!(
                    "{bytes} bytes against a usual {:.0}",
                    entry.bytes.mean
                ));
            }
            entry.bytes.add(value, self.config.alpha);
        }
        if !reasons.is_empty() {
            findings.push(
                Finding::new(NAME, ThreatKind::Exfiltration, 0.75, reasons.join("; "))
                    .at(format!("{} {}", response.method, response.path))
                    .for_identity(who),
            );
        }
    }
}
