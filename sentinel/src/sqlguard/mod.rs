//! SQLGuard: the SQL-injection check every value goes through. Layer 1 is deterministic: it
//! normalises the value once, then asks in each quote context whether the value breaks out of
//! its literal into valid-looking SQL and what shape that SQL has. Layer 2 ([`ml`]) is a tiny
//! learned classifier over the same normalised value; [`ml::combine`] merges the two.
//!
//! Pipeline: [`normalize::normalize`] → per [`Context`]: [`lexer::Lexer`] →
//! [`fingerprint::analyze`] (fold, breakout gate, fingerprint, shapes, rules), plus one pass
//! per other literal the value closes (`$$`, `` ` ``, `*/`: see `best_gated`) → the most
//! confident context is layer 1's verdict → [`ml::Classifier::probability`] →
//! [`ml::combine`] → the [`Verdict`].

pub mod fingerprint;
pub mod lexer;
pub mod ml;
pub mod normalize;

use std::fmt::Write as _;

pub use fingerprint::{Analysis, Fingerprint, Rule, Technique};
pub use lexer::Context;
pub use ml::{Classifier, MlError};

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

/// Which layer-2 model a guard consults.
#[derive(Clone, Copy, Debug)]
enum Layer2 {
    /// The compiled-in model, resolved on first use (see [`SqlGuard::new`]).
    Embedded,
    /// A model resolved up front.
    Model(&'static Classifier),
    /// Layer 1 alone.
    Off,
}

/// The SQL-injection patrol check. Stateless and cheap to share (`Copy`).
#[derive(Clone, Copy, Debug)]
pub struct SqlGuard {
    layer2: Layer2,
}

impl Default for SqlGuard {
    fn default() -> Self {
        SqlGuard::new()
    }
}

impl SqlGuard {
    /// A guard checking all three [contexts](Context::ALL) with both layers. The compiled-in
    /// model is parsed on first use; if that ever failed, the guard logs it once and runs on
    /// layer 1 alone. Prefer [`SqlGuard::load`] at boot, which turns that into an error.
    pub const fn new() -> Self {
        SqlGuard {
            layer2: Layer2::Embedded,
        }
    }

    /// Both layers, the compiled-in model loaded now: a bad weights file is this error.
    pub fn load() -> Result<Self, MlError> {
        Ok(SqlGuard {
            layer2: Layer2::Model(Classifier::embedded()?),
        })
    }

    /// Both layers with a given model (tests, or weights under evaluation).
    pub const fn with_classifier(model: &'static Classifier) -> Self {
        SqlGuard {
            layer2: Layer2::Model(model),
        }
    }

    /// Layer 1 alone: deterministic rules, no model.
    pub const fn layer1_only() -> Self {
        SqlGuard {
            layer2: Layer2::Off,
        }
    }

    fn classifier(&self) -> Option<&'static Classifier> {
        match self.layer2 {
            Layer2::Embedded => ml::embedded_or_log(),
            Layer2::Model(m) => Some(m),
            Layer2::Off => None,
        }
    }

    /// Per-context analyses of `value`, for callers that want more than the verdict. The
    /// three quote contexts only: the extra passes for `$$`, backtick and `*/` closers that
    /// [`SqlGuard::inspect`] also runs are not included.
    pub fn analyze(&self, value: &str) -> [Analysis; 3] {
        let normalized = normalize::normalize(value);
        Context::ALL.map(|ctx| fingerprint::analyze(&normalized, ctx))
    }

    /// What each layer says about `value`, before [combining](ml::combine); `None` for a
    /// layer-1-only guard (or if the compiled-in model failed to load).
    pub fn layers(&self, value: &str) -> Option<ml::Layers> {
        let model = self.classifier()?;
        let normalized = normalize::normalize(value);
        let best = best_gated(&normalized);
        Some(ml::Layers {
            layer1: best.as_ref().map_or(0.0, |(a, _)| a.score),
            gated: best.is_some(),
            layer2: model.probability(&normalized),
        })
    }

    /// Inspects one untrusted value.
    pub fn inspect(&self, value: &str) -> Verdict {
        let normalized = normalize::normalize(value);
        let best = best_gated(&normalized);
        let layer1 = best
            .as_ref()
            .map_or_else(Verdict::clean, |(a, closes)| layer1_verdict(a, *closes));
        let Some(model) = self.classifier() else {
            return layer1;
        };
        let p = model.probability(&normalized);
        let confidence = ml::combine(ml::Layers {
            layer1: layer1.confidence,
            gated: best.is_some(),
            layer2: p,
        });
        if confidence == layer1.confidence && !layer1.attack {
            // The common benign case: nothing to add, nothing allocated.
            return layer1;
        }
        let mut evidence = layer1.evidence;
        if evidence.is_empty() {
            evidence.push_str("no known attack shape");
        }
        let _ = write!(evidence, "; layer2 p={p:.3}");
        Verdict {
            attack: confidence >= ATTACK_THRESHOLD,
            confidence,
            evidence,
        }
    }
}

/// Literals other than quoted strings that a value can close, with the name evidence uses:
/// PostgreSQL dollar quoting (`$$...$$`), MySQL backtick identifiers, block comments. sqlmap
/// tries all three (`1$$ or 5=5--`, ``x` where 5=5 and ...#``, `1*/ union select 1/*`).
const CLOSERS: [(&str, &str); 3] = [
    ("$$", "dollar-quote"),
    ("`", "backtick"),
    ("*/", "block-comment"),
];

/// Layer 1's most confident gated context, and which [`CLOSERS`] entry it breaks out of when
/// that is not a quote. A value that closes `$$`, `` ` `` or `*/` before any `'` is also
/// analysed with that closer read as the closing quote of a single-quoted slot: the SQL after
/// it is what would run. Only values holding a closer pay for the extra pass (and its copy).
fn best_gated(normalized: &str) -> Option<(Analysis, Option<&'static str>)> {
    fn better(a: &Analysis, best: &Option<(Analysis, Option<&'static str>)>) -> bool {
        a.gated && best.as_ref().is_none_or(|(b, _)| a.score >= b.score)
    }
    let mut best = None;
    for ctx in Context::ALL {
        let a = fingerprint::analyze(normalized, ctx);
        if better(&a, &best) {
            best = Some((a, None));
        }
    }
    for (closer, name) in CLOSERS {
        let Some(at) = normalized.find(closer) else {
            continue;
        };
        if normalized[..at].contains('\'') {
            continue;
        }
        let mut rewritten = String::with_capacity(normalized.len());
        rewritten.push_str(&normalized[..at]);
        rewritten.push('\'');
        rewritten.push_str(&normalized[at + closer.len()..]);
        let a = fingerprint::analyze(&rewritten, Context::SingleQuote);
        // Strictly better only: a quote context that says as much keeps its plainer evidence.
        if better(&a, &best) && best.as_ref().is_none_or(|(b, _)| a.score > b.score) {
            best = Some((a, Some(name)));
        }
    }
    best
}

/// Layer 1's verdict from its most confident gated context.
fn layer1_verdict(best: &Analysis, closes: Option<&'static str>) -> Verdict {
    let attack = best.score >= ATTACK_THRESHOLD;
    let mut evidence = String::new();
    let _ = write!(
        evidence,
        "{}: fingerprint {}",
        closes.unwrap_or(best.context.name()),
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
