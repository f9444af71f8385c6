//! Tier 3: the incident commander that escalations go to. Rules decide today; the trait is
//! the seam where a language-model commander will plug in later.

use std::time::Duration;

use magmobo_core::prelude::async_trait;

use super::{Incident, Stage};

/// What the commander decided about an escalated incident.
#[derive(Debug, Clone, PartialEq)]
pub struct CommanderDecision {
    /// Block the source this long (`None`: keep the analyzer's block period).
    pub block_for: Option<Duration>,
    /// Why, for the audit log.
    pub note: String,
}

/// Receives escalated incidents.
#[async_trait]
pub trait IncidentCommander: Send + Sync + 'static {
    /// Decides about one escalated incident.
    async fn escalate(&self, incident: &Incident) -> CommanderDecision;
}

/// The rules commander: the more stages an attack covered, the longer the block.
#[derive(Debug, Clone, Default)]
pub struct RulesCommander;

#[async_trait]
impl IncidentCommander for RulesCommander {
    async fn escalate(&self, incident: &Incident) -> CommanderDecision {
        let intrusion = incident.stages.contains(&Stage::Injection)
            || incident.stages.contains(&Stage::Credentials);
        let (minutes, why) = match (incident.stages.len(), intrusion) {
            (n, true) if n >= 3 => (24 * 60, "a multi-stage intrusion"),
            (2, true) => (4 * 60, "reconnaissance followed by an intrusion attempt"),
            // One confident attempt alone: long enough to stop a tool, short enough that a
            // developer trying the quick-start is not locked out for the day.
            (_, true) => (10, "a confident intrusion attempt"),
            _ => (30, "confident hostile traffic"),
        };
        CommanderDecision {
            block_for: Some(Duration::from_secs(minutes * 60)),
            note: format!("rules: {why}; source blocked for {minutes} min"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::analyzer::Decision;

    fn incident(stages: &[Stage]) -> Incident {
        Incident {
            source: std::net::IpAddr::from([10, 0, 0, 1]),
            stages: stages.to_vec(),
            kinds: BTreeSet::new(),
            agents: BTreeSet::new(),
            signals: stages.len(),
            decision: Decision::Escalate,
            summary: String::new(),
        }
    }

    #[tokio::test]
    async fn the_more_stages_the_longer_the_block() {
        let minutes = async |stages: &[Stage]| {
            let decision = RulesCommander.escalate(&incident(stages)).await;
            decision.block_for.map(|d| d.as_secs() / 60)
        };
        assert_eq!(minutes(&[Stage::Injection]).await, Some(10));
        assert_eq!(minutes(&[Stage::Recon, Stage::Injection]).await, Some(240));
        let all = [Stage::Recon, Stage::Injection, Stage::Credentials];
        assert_eq!(minutes(&all).await, Some(1440));
        assert_eq!(minutes(&[Stage::Recon]).await, Some(30));
    }
}
