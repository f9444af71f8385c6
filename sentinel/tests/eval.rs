//! Layer-1 evaluation on a held-out corpus: detection rate per technique, dialect and
//! obfuscation, false-positive rate per benign kind; and both layers on the sets that do not
//! come from our generator: the held-out split of the external corpus (sqlmap, wfuzz, Faker,
//! Python's documentation; `tests/data/external/README.md`) and the hand-written sets. Run
//! with `--nocapture` to see the figures; the assertions keep regressions from landing
//! silently.

// Tests unwrap freely: a panic with the value is the clearest failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use sentinel::SqlGuard;
use sentinel::corpus::{Category, Corpus, Label};

const SEED: u64 = 2024;
const PER_LABEL: usize = 40_000;

#[derive(Default)]
struct Tally {
    hit: usize,
    total: usize,
}

impl Tally {
    fn add(&mut self, hit: bool) {
        self.total += 1;
        self.hit += usize::from(hit);
    }
    fn rate(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            100.0 * self.hit as f64 / self.total as f64
        }
    }
}

fn print(title: &str, map: &BTreeMap<String, Tally>) {
    println!("{title}");
    for (k, t) in map {
        println!("  {k:<22} {:>6.2}%  ({}/{})", t.rate(), t.hit, t.total);
    }
}

#[test]
fn layer1_detection_and_false_positives_on_held_out() {
    let corpus = Corpus::generate(SEED, PER_LABEL, PER_LABEL);
    let split = corpus.split(SEED, 0.5);
    let guard = SqlGuard::new();
    let (mut attacks, mut benign) = (Tally::default(), Tally::default());
    let mut by_technique = BTreeMap::new();
    let mut by_dialect = BTreeMap::new();
    let mut by_obfuscation = BTreeMap::new();
    let mut by_kind = BTreeMap::new();
    let mut misses = Vec::new();
    let mut false_positives = Vec::new();
    for s in &split.held_out {
        let verdict = guard.inspect(&s.text);
        match (s.label, s.category) {
            (
                Label::Attack,
                Category::Attack {
                    technique,
                    dialect,
                    obfuscation,
                },
            ) => {
                attacks.add(verdict.attack);
                by_technique
                    .entry(technique.as_str().to_string())
                    .or_insert_with(Tally::default)
                    .add(verdict.attack);
                by_dialect
                    .entry(dialect.as_str().to_string())
                    .or_insert_with(Tally::default)
                    .add(verdict.attack);
                by_obfuscation
                    .entry(obfuscation.as_str().to_string())
                    .or_insert_with(Tally::default)
                    .add(verdict.attack);
                if !verdict.attack {
                    misses.push(s);
                }
            }
            (_, Category::Benign(kind)) => {
                benign.add(verdict.attack);
                by_kind
                    .entry(kind.as_str().to_string())
                    .or_insert_with(Tally::default)
                    .add(verdict.attack);
                if verdict.attack {
                    false_positives.push((s, verdict));
                }
            }
            _ => unreachable!("labels and categories agree"),
        }
    }
    println!(
        "held-out: {} attacks, {} benign (seed {SEED})",
        attacks.total, benign.total
    );
    println!(
        "detection {:.2}%  false positives {:.3}%",
        attacks.rate(),
        benign.rate()
    );
    print("detection by technique", &by_technique);
    print("detection by dialect", &by_dialect);
    print("detection by obfuscation", &by_obfuscation);
    print("false positives by benign kind", &by_kind);
    for s in misses.iter().take(40) {
        println!("MISS {} {:?}", s.category, s.text);
    }
    for (s, v) in false_positives.iter().take(40) {
        println!("FP {} {:?} -> {}", s.category, s.text, v.evidence);
    }
    assert!(
        attacks.total > 15_000 && benign.total > 15_000,
        "corpus too small"
    );
    assert!(
        benign.rate() <= 0.3,
        "false positives {:.3}% > 0.3%",
        benign.rate()
    );
    assert!(
        attacks.rate() >= 97.0,
        "detection {:.2}% < 97%",
        attacks.rate()
    );
}

/// Values of a data file: one per line, `# ` lines and blank lines skipped.
fn data_file(name: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("# "))
        .map(str::to_string)
        .collect()
}

/// Both layers over one labelled file: (flagged, total), printing what went wrong.
fn combined(name: &str, attack: bool) -> (usize, usize) {
    let guard = SqlGuard::load().unwrap();
    let values = data_file(name);
    let mut flagged = 0;
    for v in &values {
        let verdict = guard.inspect(v);
        flagged += usize::from(verdict.attack);
        if verdict.attack != attack {
            let what = if attack { "MISS" } else { "FP" };
            println!(
                "{what} {name} {v:?} -> {:.2} {}",
                verdict.confidence, verdict.evidence
            );
        }
    }
    println!(
        "{name}: {flagged}/{} flagged ({:.2}%)",
        values.len(),
        100.0 * flagged as f64 / values.len().max(1) as f64
    );
    (flagged, values.len())
}

#[test]
fn both_layers_on_the_external_held_out_split() {
    let (detected, attacks) = combined("external/attacks-held-out.txt", true);
    let (fps, benign) = combined("external/benign-held-out.txt", false);
    assert!(
        attacks > 1_000 && benign > 2_000,
        "external corpus too small"
    );
    let detection = 100.0 * detected as f64 / attacks as f64;
    let fp_rate = 100.0 * fps as f64 / benign as f64;
    // Issue 5's targets: detection at least 98%, false positives at most 0.3%.
    assert!(detection >= 98.0, "detection {detection:.2}% < 98%");
    assert!(fp_rate <= 0.3, "false positives {fp_rate:.3}% > 0.3%");
}

#[test]
fn both_layers_on_the_hand_written_sets() {
    let (detected, attacks) = combined("attacks-handwritten.txt", true);
    let (fps, benign) = combined("benign-realistic.txt", false);
    assert!(attacks >= 100 && benign >= 390, "hand-written sets shrank");
    assert!(
        detected * 100 >= attacks * 98,
        "detection {detected}/{attacks} < 98%"
    );
    // The 0.3% target allows one of 396; two values remain that layer 1 is sure of (see
    // docs/sentinel.md), so this guards against regressions, not the target.
    assert!(fps <= 2, "false positives {fps}/{benign}");
}
