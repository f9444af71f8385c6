//! SQLGuard layer 1: the deterministic SQL-injection check every value goes through before
//! any learned model. It normalises the value once, then asks in each quote context whether
//! the value breaks out of its literal into valid-looking SQL and what shape that SQL has.
//!
//! Pipeline: [`normalize::normalize`] → per [`Context`]: [`lexer::Lexer`] →
//! [`fingerprint::analyze`] (fold, breakout gate, fingerprint, shapes, rules) → the most
//! confident context becomes the [`Verdict`].

pub mod fingerprint;
pub mod lexer;
pub mod normalize;

use std::fmt::Write as _;

pub use fingerprint::{Analysis, Fingerprint, Rule, Technique};
pub use lexer::Context;

/// Scores at or above this are reported as attacks.
pub const ATTACK_THRESHOLD: f32 = 0.5;

/// The decision on one value.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// Whether layer 1 considers the value an injection.
    pub attack: bool,
    /// Score in 0..1 that the value is an injection (`attack` iff at least
    /// [`ATTACK_THRESHOLD`]). Values that never break out of their literal score 0; values that
    /// break out but match nothing score low, which a later layer may want to look at.
    pub confidence: f32,
    /// Why: context, fingerprint, shape and rules of the deciding context. Empty for values
    /// that never break out, so the common case does not allocate.
    pub evidence: String,
}

impl Verdict {
    fn clean() -> Self {
        Verdict {
            attack: false,
            confidence: 0.0,
            evidence: String::new(),
        }
    }
}

/// The SQL-injection patrol check. Stateless and cheap to share.
#[derive(Clone, Copy, Debug, Default)]
pub struct SqlGuard {
    _private: (),
}

impl SqlGuard {
    /// A guard checking all three [contexts](Context::ALL).
    pub const fn new() -> Self {
        SqlGuard { _private: () }
    }

    /// Per-context analyses of `value`, for callers that want more than the verdict (the
    /// future ML layer uses fingerprints as features).
    pub fn analyze(&self, value: &str) -> [Analysis; 3] {
        let normalized = normalize::normalize(value);
        Context::ALL.map(|ctx| fingerprint::analyze(&normalized, ctx))
    }

    /// Inspects one untrusted value.
    pub fn inspect(&self, value: &str) -> Verdict {
        let analyses = self.analyze(value);
        let Some(best) = analyses
            .iter()
            .filter(|a| a.gated)
            .max_by(|a, b| a.score.total_cmp(&b.score))
        else {
            return Verdict::clean();
        };
        let attack = best.score >= ATTACK_THRESHOLD;
        let mut evidence = String::new();
        let _ = write!(
            evidence,
            "{}: fingerprint {}",
            best.context.name(),
            best.fingerprint
        );
        if let Some(shape) = best.shape {
            let _ = write!(
                evidence,
                "; shape {} ({})",
                shape.pattern,
                shape.technique.name()
            );
        }
        let mut rules = best.rules.iter().peekable();
        if rules.peek().is_some() {
            evidence.push_str("; rules ");
            for (i, rule) in rules.enumerate() {
                if i > 0 {
                    evidence.push(',');
                }
                evidence.push_str(rule.name());
            }
        }
        Verdict {
            attack,
            confidence: best.score,
            evidence,
        }
    }
}
