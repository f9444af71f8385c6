//! Corpus generator: labelled SQL-injection payloads and realistic benign values, made
//! deterministically from a seed, to measure SQLGuard and to train its later learned layer.
//!
//! Attacks come from a small grammar ([`attack`]): a breakout prefix for a quote or numeric
//! slot, a technique template per dialect, a terminator, then an obfuscation (case mixing,
//! whitespace and inline-comment variants, MySQL versioned comments, hex/`char()` literals,
//! URL, double URL, `%u` and HTML encoding). Benign values ([`benign`]) are the things users
//! really type into fields: names with apostrophes, reviews and chat that say "select",
//! "union" and "drop", SQL questions, code, emails, URLs, JSON, markdown, other scripts,
//! scalars and PostgREST filter values.
//!
//! The same seed always gives the same corpus (ChaCha8, no global RNG), so numbers in reports
//! can be reproduced.

pub mod attack;
pub mod benign;

use std::collections::HashSet;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

pub use attack::{Dialect, Obfuscation, Technique};
pub use benign::BenignKind;

/// Ground truth of a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Label {
    /// An injection payload.
    Attack,
    /// A value a legitimate user could send.
    Benign,
}

impl Label {
    /// `"attack"` or `"benign"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Label::Attack => "attack",
            Label::Benign => "benign",
        }
    }
}

/// What kind of sample it is, beyond the label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Category {
    /// An attack of a technique, for a dialect, with an obfuscation.
    Attack {
        /// Injection technique.
        technique: Technique,
        /// Target database.
        dialect: Dialect,
        /// Evasion applied to the rendered payload.
        obfuscation: Obfuscation,
    },
    /// A benign value of a kind.
    Benign(BenignKind),
}

impl std::fmt::Display for Category {
    /// `technique/dialect[/obfuscation]` or `benign/kind`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Category::Attack {
                technique,
                dialect,
                obfuscation: Obfuscation::None,
            } => write!(f, "{}/{}", technique.as_str(), dialect.as_str()),
            Category::Attack {
                technique,
                dialect,
                obfuscation,
            } => write!(
                f,
                "{}/{}/{}",
                technique.as_str(),
                dialect.as_str(),
                obfuscation.as_str()
            ),
            Category::Benign(kind) => write!(f, "benign/{}", kind.as_str()),
        }
    }
}

/// One labelled value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The value as it would arrive in a request.
    pub text: String,
    /// Ground truth.
    pub label: Label,
    /// Technique/dialect or benign kind.
    pub category: Category,
}

impl Sample {
    /// The sample as one JSON object: `{"text","label","category"}`.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "text": self.text,
            "label": self.label.as_str(),
            "category": self.category.to_string(),
        })
        .to_string()
    }
}

/// A generated corpus, duplicate-free by text.
#[derive(Clone, Debug, Default)]
pub struct Corpus {
    /// The samples, attacks and benign interleaved in generation order.
    pub samples: Vec<Sample>,
}

/// Train and held-out parts of a corpus; no text appears in both.
#[derive(Clone, Debug, Default)]
pub struct Split {
    /// Samples to learn or tune from.
    pub train: Vec<Sample>,
    /// Samples to measure on.
    pub held_out: Vec<Sample>,
}

impl Corpus {
    /// Generates `attacks` attack payloads and `benign` benign values from `seed`. Duplicate
    /// texts are dropped (a benign `42` is generated many times), so a corpus can be a little
    /// smaller than asked for; generation retries a bounded number of times to fill it.
    pub fn generate(seed: u64, attacks: usize, benign: usize) -> Corpus {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut seen = HashSet::with_capacity(attacks + benign);
        let mut samples = Vec::with_capacity(attacks + benign);
        let mut fill =
            |want: usize, samples: &mut Vec<Sample>, attack: bool, rng: &mut ChaCha8Rng| {
                let mut made = 0;
                let mut tries = 0;
                while made < want && tries < want * 4 + 100 {
                    tries += 1;
                    let sample = if attack {
                        attack::generate(rng)
                    } else {
                        benign::generate(rng)
                    };
                    if seen.insert(sample.text.clone()) {
                        samples.push(sample);
                        made += 1;
                    }
                }
            };
        fill(attacks, &mut samples, true, &mut rng);
        fill(benign, &mut samples, false, &mut rng);
        Corpus { samples }
    }

    /// Shuffles with `seed` and puts `held_out_fraction` (clamped to 0..=1) of the samples in
    /// the held-out part. The corpus is duplicate-free, so no text is in both parts.
    pub fn split(&self, seed: u64, held_out_fraction: f64) -> Split {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_5b11_7000_0000);
        let mut all = self.samples.clone();
        // Dedupe again in case the corpus was assembled by hand.
        let mut seen = HashSet::with_capacity(all.len());
        all.retain(|s| seen.insert(s.text.clone()));
        all.shuffle(&mut rng);
        let held = (all.len() as f64 * held_out_fraction.clamp(0.0, 1.0)).round() as usize;
        let train = all.split_off(held);
        Split {
            train,
            held_out: all,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_corpus_different_seed_different_corpus() {
        let a = Corpus::generate(7, 200, 200);
        let b = Corpus::generate(7, 200, 200);
        let c = Corpus::generate(8, 200, 200);
        assert_eq!(a.samples, b.samples);
        assert_ne!(a.samples, c.samples);
    }

    #[test]
    fn split_has_no_shared_text() {
        let corpus = Corpus::generate(1, 2000, 2000);
        let split = corpus.split(3, 0.3);
        let train: HashSet<&str> = split.train.iter().map(|s| s.text.as_str()).collect();
        assert!(
            split
                .held_out
                .iter()
                .all(|s| !train.contains(s.text.as_str()))
        );
        assert_eq!(
            split.train.len() + split.held_out.len(),
            corpus.samples.len()
        );
        assert!(split.held_out.len() > 1000);
    }

    #[test]
    fn labels_match_categories_and_cover_everything() {
        let corpus = Corpus::generate(11, 5000, 5000);
        let mut techniques = HashSet::new();
        let mut dialects = HashSet::new();
        let mut kinds = HashSet::new();
        for s in &corpus.samples {
            match s.category {
                Category::Attack {
                    technique, dialect, ..
                } => {
                    assert_eq!(s.label, Label::Attack);
                    techniques.insert(technique);
                    dialects.insert(dialect);
                }
                Category::Benign(kind) => {
                    assert_eq!(s.label, Label::Benign);
                    kinds.insert(kind);
                }
            }
        }
        assert_eq!(techniques.len(), Technique::ALL.len());
        assert_eq!(dialects.len(), Dialect::ALL.len());
        assert_eq!(kinds.len(), BenignKind::ALL.len());
    }

    #[test]
    fn json_line_round_trips() {
        let s = Sample {
            text: "it's \"quoted\"\n".into(),
            label: Label::Benign,
            category: Category::Benign(BenignKind::Chat),
        };
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(v["text"], "it's \"quoted\"\n");
        assert_eq!(v["label"], "benign");
        assert_eq!(v["category"], "benign/chat");
    }
}
