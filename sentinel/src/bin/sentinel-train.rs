//! `sentinel-train`: trains SQLGuard layer 2 reproducibly and measures all layers.
//!
//! It generates the corpus with the repo's generator and a fixed seed, splits it
//! deterministically (held-out half, as the layer-1 evaluation; the rest 90% train, 10%
//! validation), keeps whole attack families out of training so they measure generalisation,
//! adds the train split of the external corpus (`sentinel/tests/data/external/`, drawn from
//! sqlmap, wfuzz, Faker and Python's documentation by `sentinel/corpus-tools/`; a tenth of it,
//! by a hash of the value, is validation), trains on the CPU with candle, writes
//! `sentinel/models/sqlguard-v1.safetensors` and its JSON sidecar (seed, hashing parameters,
//! metrics), then evaluates layer 1 alone, layer 2 alone and both on the generated held-out
//! split, on the held-out families, on the hand-written sets in `sentinel/tests/data/` and on
//! the external held-out split, none of which is trained on.
//!
//! Usage: `sentinel-train [--seed N] [--size N] [--epochs N] [--eval-only] [--verbose]
//! [--sweep] [--no-external-attacks]`. `--eval-only` measures the weights compiled into this
//! binary instead of training new ones; `--sweep` tries a grid of combination cut-offs on the
//! two validation sets only (the cut-offs must not be chosen on an evaluation set);
//! `--no-external-attacks` leaves the GPL-derived external attacks out of training (they
//! remain a held-out measure).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use sentinel::corpus::{Category, Corpus, Dialect, Label, Obfuscation, Sample};
use sentinel::sqlguard::ml::train::{self, Example, TrainConfig};
use sentinel::sqlguard::ml::{self, Classifier, FeatureParams, model::HIDDEN};
use sentinel::sqlguard::normalize::normalize;
use sentinel::{SqlGuard, sqlguard::ATTACK_THRESHOLD};
use sha2::{Digest, Sha256};

const USAGE: &str = "usage: sentinel-train [--seed N] [--size N] [--epochs N] [--eval-only] [--verbose] [--sweep] [--no-external-attacks] [--benign-weight W] [--lr R] [--weight-decay D]";

/// Attack families kept out of training and measured separately.
fn held_out_family(s: &Sample) -> bool {
    matches!(
        s.category,
        Category::Attack {
            dialect: Dialect::Oracle,
            ..
        } | Category::Attack {
            obfuscation: Obfuscation::InlineComment,
            ..
        }
    )
}
const HELD_OUT_FAMILIES: &str = "dialect oracle; obfuscation inline-comment";

struct Args {
    seed: u64,
    size: usize,
    epochs: usize,
    eval_only: bool,
    verbose: bool,
    sweep: bool,
    /// Train without the GPL-derived external attacks (they stay a held-out measure).
    no_external_attacks: bool,
    config: TrainConfig,
}

fn parse() -> Option<Args> {
    let mut a = Args {
        seed: 2024,
        size: 40_000,
        epochs: TrainConfig::default().epochs,
        eval_only: false,
        verbose: false,
        sweep: false,
        no_external_attacks: false,
        config: TrainConfig::default(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--eval-only" => a.eval_only = true,
            "--verbose" => a.verbose = true,
            "--sweep" => a.sweep = true,
            "--no-external-attacks" => a.no_external_attacks = true,
            "--benign-weight" => a.config.benign_weight = args.next()?.parse().ok()?,
            "--lr" => a.config.learning_rate = args.next()?.parse().ok()?,
            "--weight-decay" => a.config.weight_decay = args.next()?.parse().ok()?,
            "--seed" => a.seed = args.next()?.parse().ok()?,
            "--size" => a.size = args.next()?.parse().ok()?,
            "--epochs" => a.epochs = args.next()?.parse().ok()?,
            _ => return None,
        }
    }
    Some(a)
}

fn main() -> ExitCode {
    let Some(args) = parse() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sentinel-train: {e}");
            ExitCode::FAILURE
        }
    }
}

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn data_file(name: &str) -> Result<Vec<String>, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("# "))
        .map(str::to_string)
        .collect())
}

/// One split of the external corpus (`tests/data/external`, from public packages, see its
/// README): attacks and benign values, labelled.
fn external_set(part: &str) -> Result<Vec<(String, bool)>, String> {
    let mut values: Vec<(String, bool)> = data_file(&format!("external/attacks-{part}.txt"))?
        .into_iter()
        .map(|v| (v, true))
        .collect();
    values.extend(
        data_file(&format!("external/benign-{part}.txt"))?
            .into_iter()
            .map(|v| (v, false)),
    );
    Ok(values)
}

/// One labelled evaluation set.
struct Set {
    name: &'static str,
    values: Vec<(String, bool)>,
}

fn run(args: &Args) -> Result<(), String> {
    let t0 = Instant::now();
    let corpus = Corpus::generate(args.seed, args.size, args.size);
    let split = corpus.split(args.seed, 0.5);
    let (family_train, pool): (Vec<Sample>, Vec<Sample>) =
        split.train.into_iter().partition(held_out_family);
    let (families, held_out): (Vec<Sample>, Vec<Sample>) =
        split.held_out.into_iter().partition(held_out_family);
    let validation_len = pool.len() / 10;
    let (validation, training) = pool.split_at(validation_len);
    // A tenth of the external train split (by a hash of the value) is validation: never
    // trained on, it is where `--sweep` picks the cut-offs together with the generated one.
    // `--no-external-attacks`: the weights then owe nothing to the GPL-derived attack files,
    // which remain a measure only (see tests/data/external/README.md).
    let (external_validation, external_train): (Vec<_>, Vec<_>) = external_set("train")?
        .into_iter()
        .filter(|(_, attack)| !(args.no_external_attacks && *attack))
        .partition(|(v, _)| Sha256::digest(v.as_bytes())[0] % 10 == 0);
    let to_examples = |s: &[Sample]| -> Vec<Example> {
        s.iter()
            .map(|s| Example {
                normalized: normalize(&s.text).into_owned(),
                attack: s.label == Label::Attack,
            })
            .collect()
    };
    println!(
        "corpus seed {}: train {} (+{} external), validation {} (+{} external), held-out {}, held-out families {} (+{} kept out of training)",
        args.seed,
        training.len(),
        external_train.len(),
        validation.len(),
        external_validation.len(),
        held_out.len(),
        families.len(),
        family_train.len()
    );

    let config = TrainConfig {
        seed: args.seed,
        epochs: args.epochs,
        ..args.config
    };
    let weights_path = models_dir().join(format!("{}.safetensors", ml::MODEL_VERSION));
    let mut train_seconds = 0.0;
    let trained;
    let model: &Classifier = if args.eval_only {
        Classifier::embedded().map_err(|e| e.to_string())?
    } else {
        let mut examples = to_examples(training);
        examples.extend(external_train.iter().map(|(v, attack)| Example {
            normalized: normalize(v).into_owned(),
            attack: *attack,
        }));
        let mut val = to_examples(validation);
        val.extend(external_validation.iter().map(|(v, attack)| Example {
            normalized: normalize(v).into_owned(),
            attack: *attack,
        }));
        let t = Instant::now();
        let weights = train::train(&examples, config, |epoch, loss, w| {
            let acc = validation_accuracy(&val, w);
            println!("epoch {epoch}: train loss {loss:.4}, validation accuracy {acc:.4}");
        })
        .map_err(|e| e.to_string())?;
        train_seconds = t.elapsed().as_secs_f64();
        weights.save(&weights_path).map_err(|e| e.to_string())?;
        let bytes = std::fs::read(&weights_path).map_err(|e| e.to_string())?;
        trained = Classifier::from_safetensors(&bytes).map_err(|e| e.to_string())?;
        &trained
    };
    let model: &'static Classifier = Box::leak(Box::new(model.clone()));

    let mut sets = vec![
        Set {
            name: "generated held-out",
            values: labelled(&held_out),
        },
        Set {
            name: "held-out families",
            values: labelled(&families),
        },
    ];
    sets.push(Set {
        name: "hand-written benign",
        values: data_file("benign-realistic.txt")?
            .into_iter()
            .map(|v| (v, false))
            .collect(),
    });
    sets.push(Set {
        name: "hand-written attacks",
        values: data_file("attacks-handwritten.txt")?
            .into_iter()
            .map(|v| (v, true))
            .collect(),
    });
    sets.push(Set {
        name: "external held-out",
        values: external_set("held-out")?,
    });
    sets.push(Set {
        name: "generated validation",
        values: labelled(validation),
    });
    let external_validation_len = external_validation.len();
    sets.push(Set {
        name: "external validation",
        values: external_validation,
    });

    println!();
    println!("| set | layer | detection | false positives | median µs | p99 µs |");
    println!("|---|---|---|---|---|---|");
    let mut metrics = serde_json::Map::new();
    for set in &sets {
        let mut per = serde_json::Map::new();
        for layer in ["layer 1", "layer 2", "combined"] {
            let m = measure(&set.values, layer, model);
            println!(
                "| {} | {layer} | {} | {} | {:.2} | {:.2} |",
                set.name,
                m.detection_text(),
                m.fp_text(),
                m.median_us,
                m.p99_us
            );
            per.insert(layer.to_string(), m.json());
            if layer == "combined" || args.verbose {
                for (v, truth, said) in m.wrong.iter().take(if args.verbose { 40 } else { 15 }) {
                    let what = if *truth { "MISS" } else { "FP" };
                    eprintln!("  {layer} {what} {v:?} -> {said}");
                }
            }
        }
        metrics.insert(set.name.to_string(), serde_json::Value::Object(per));
    }
    if args.sweep {
        sweep(&sets, model);
    }
    let candle_us = candle_inference_us(&sets[0].values, &weights_path)?;
    println!(
        "\ncandle tensor inference of layer 2 (dense 1x{} input): median {candle_us:.2} µs",
        FeatureParams::CURRENT.buckets
    );

    if !args.eval_only {
        let bytes = std::fs::read(&weights_path).map_err(|e| e.to_string())?;
        let sidecar = serde_json::json!({
            "version": ml::MODEL_VERSION,
            "weights_sha256": format!("{:x}", Sha256::digest(&bytes)),
            "weights_bytes": bytes.len(),
            "architecture": format!("hashed byte n-grams -> {} ReLU -> 1 logit", HIDDEN),
            "features": {
                "version": FeatureParams::CURRENT.version,
                "buckets": FeatureParams::CURRENT.buckets,
                "ngram": [1, FeatureParams::CURRENT.max_n],
                "max_bytes": FeatureParams::CURRENT.max_bytes,
                "hash_seed": format!("{:#x}", sentinel::sqlguard::ml::features::HASH_SEED),
                "markers": "0x02 before, 0x03 after the normalised value",
                "scale": "count / sqrt(number of n-grams)",
            },
            "corpus": {
                "seed": args.seed,
                "per_label": args.size,
                "split": "Corpus::split(seed, 0.5): held-out half; the rest 10% validation, 90% train",
                "train": training.len(),
                "validation": validation.len(),
                "held_out": held_out.len(),
                "held_out_families": HELD_OUT_FAMILIES,
                "external": {
                    "files": "sentinel/tests/data/external/{attacks,benign}-{train,held-out}.txt",
                    "train": external_train.len(),
                    "validation": external_validation_len,
                    "held_out": "never trained on; measured as `external held-out`",
                },
            },
            "training": {
                "epochs": config.epochs,
                "batch": config.batch,
                "learning_rate": config.learning_rate,
                "benign_weight": config.benign_weight,
                "weight_decay": config.weight_decay,
                "optimizer": "Adam",
                "seconds": (train_seconds * 10.0).round() / 10.0,
            },
            "metrics": metrics,
            "reproduce": "cargo run -p magmobo-sentinel --release --bin sentinel-train",
        });
        let json = serde_json::to_string_pretty(&sidecar).map_err(|e| e.to_string())?;
        let path = models_dir().join(format!("{}.json", ml::MODEL_VERSION));
        std::fs::write(&path, json + "\n").map_err(|e| e.to_string())?;
        println!("wrote {} and {}", weights_path.display(), path.display());
        println!("training took {train_seconds:.1} s");
    }
    println!("total {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}

fn labelled(samples: &[Sample]) -> Vec<(String, bool)> {
    samples
        .iter()
        .map(|s| (s.text.clone(), s.label == Label::Attack))
        .collect()
}

fn validation_accuracy(val: &[Example], w: &train::Weights) -> f64 {
    let mut right = 0usize;
    for chunk in val.chunks(512) {
        let texts: Vec<&str> = chunk.iter().map(|e| e.normalized.as_str()).collect();
        let Ok(z) = train::dense_batch(&texts)
            .and_then(|x| train::forward(&x, w))
            .and_then(|z| z.to_vec1::<f32>())
        else {
            return f64::NAN;
        };
        right += z
            .iter()
            .zip(chunk)
            .filter(|(z, e)| (**z >= 0.0) == e.attack)
            .count();
    }
    right as f64 / val.len().max(1) as f64
}

struct Measured {
    attacks: usize,
    detected: usize,
    benign: usize,
    false_positives: usize,
    median_us: f64,
    p99_us: f64,
    wrong: Vec<(String, bool, String)>,
}

impl Measured {
    fn detection_text(&self) -> String {
        if self.attacks == 0 {
            return "–".into();
        }
        format!(
            "{:.2}% ({}/{})",
            100.0 * self.detected as f64 / self.attacks as f64,
            self.detected,
            self.attacks
        )
    }
    fn fp_text(&self) -> String {
        if self.benign == 0 {
            return "–".into();
        }
        format!(
            "{:.3}% ({}/{})",
            100.0 * self.false_positives as f64 / self.benign as f64,
            self.false_positives,
            self.benign
        )
    }
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "attacks": self.attacks, "detected": self.detected,
            "benign": self.benign, "false_positives": self.false_positives,
            "median_us": (self.median_us * 100.0).round() / 100.0,
            "p99_us": (self.p99_us * 100.0).round() / 100.0,
        })
    }
}

fn measure(values: &[(String, bool)], layer: &str, model: &'static Classifier) -> Measured {
    let l1 = SqlGuard::layer1_only();
    let both = SqlGuard::with_classifier(model);
    let mut times = Vec::with_capacity(values.len());
    let mut m = Measured {
        attacks: 0,
        detected: 0,
        benign: 0,
        false_positives: 0,
        median_us: 0.0,
        p99_us: 0.0,
        wrong: Vec::new(),
    };
    for (v, truth) in values {
        let t = Instant::now();
        let (attack, said) = match layer {
            "layer 1" => {
                let verdict = l1.inspect(v);
                (
                    verdict.attack,
                    format!("{:.2} {}", verdict.confidence, verdict.evidence),
                )
            }
            "layer 2" => {
                let p = model.probability(&normalize(v));
                (p >= ATTACK_THRESHOLD, format!("p={p:.3}"))
            }
            _ => {
                let verdict = both.inspect(v);
                (
                    verdict.attack,
                    format!("{:.2} {}", verdict.confidence, verdict.evidence),
                )
            }
        };
        times.push(t.elapsed().as_nanos() as f64 / 1000.0);
        if *truth {
            m.attacks += 1;
            m.detected += usize::from(attack);
        } else {
            m.benign += 1;
            m.false_positives += usize::from(attack);
        }
        if attack != *truth {
            m.wrong.push((v.clone(), *truth, said));
        }
    }
    // False positives first: rarer, and what a reader looks for.
    m.wrong.sort_by_key(|w| w.1);
    times.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        times
            .get(((times.len() as f64 - 1.0) * q) as usize)
            .copied()
    };
    m.median_us = pick(0.5).unwrap_or_default();
    m.p99_us = pick(0.99).unwrap_or_default();
    m
}

/// Median µs of layer 2 run as candle tensors (dense input, matmul) instead of loops.
fn candle_inference_us(values: &[(String, bool)], weights: &Path) -> Result<f64, String> {
    use candle_core::{Device, Tensor};
    let bytes = std::fs::read(weights).map_err(|e| e.to_string())?;
    let t =
        candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| e.to_string())?;
    let get = |n: &str| t.get(n).cloned().ok_or_else(|| format!("missing {n}"));
    let (w1, b1, w2, b2) = (get("w1")?, get("b1")?, get("w2")?, get("b2")?);
    let w2 = w2.unsqueeze(1).map_err(|e| e.to_string())?;
    let mut times = Vec::new();
    for (v, _) in values.iter().take(2000) {
        let start = Instant::now();
        let p = (|| -> candle_core::Result<f32> {
            let x = train::dense_batch(&[normalize(v)])?;
            let h = x.matmul(&w1)?.broadcast_add(&b1)?.relu()?;
            let z = h.matmul(&w2)?.squeeze(1)?.broadcast_add(&b2)?;
            let z: Tensor = z;
            Ok(z.to_vec1::<f32>()?.first().copied().unwrap_or_default())
        })()
        .map_err(|e| e.to_string())?;
        std::hint::black_box(p);
        times.push(start.elapsed().as_nanos() as f64 / 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(times.get(times.len() / 2).copied().unwrap_or_default())
}

/// Detection and false positives of the combination under a grid of cut-offs, on the
/// validation sets only: the cut-offs are chosen where no evaluation set is looked at.
fn sweep(sets: &[Set], model: &'static Classifier) {
    let guard = SqlGuard::with_classifier(model);
    let sets: Vec<&Set> = sets
        .iter()
        .filter(|s| s.name.ends_with("validation"))
        .collect();
    let layers: Vec<Vec<(ml::Layers, bool)>> = sets
        .iter()
        .map(|set| {
            set.values
                .iter()
                .filter_map(|(v, truth)| guard.layers(v).map(|l| (l, *truth)))
                .collect()
        })
        .collect();
    let names: Vec<&str> = sets.iter().map(|s| s.name).collect();
    println!(
        "\nsweep on {}: sure veto gated_attack free_attack -> per set: misses/attacks fps/benign",
        names.join(", ")
    );
    for sure in [0.7, 0.86, 0.9, 0.96] {
        for veto in [0.01, 0.05, 0.1, 0.2] {
            for (gated_attack, free_attack) in [0.5, 0.7, 0.8, 0.9, 0.95, 0.98]
                .into_iter()
                .flat_map(|g| [0.95, 0.98, 0.99, 0.995].map(|f| (g, f)))
            {
                let t = ml::Thresholds {
                    sure,
                    veto,
                    gated_attack,
                    free_attack,
                    ..ml::Thresholds::DEFAULT
                };
                let mut line = format!("{sure:.2} {veto:.2} {gated_attack:.2} {free_attack:.3} ->");
                for set in &layers {
                    let (mut miss, mut att, mut fp, mut ben) = (0, 0, 0, 0);
                    for (l, truth) in set {
                        let attack = ml::combine_with(*l, &t) >= ATTACK_THRESHOLD;
                        if *truth {
                            att += 1;
                            miss += usize::from(!attack);
                        } else {
                            ben += 1;
                            fp += usize::from(attack);
                        }
                    }
                    line.push_str(&format!(" | {miss}/{att} {fp}/{ben}"));
                }
                println!("{line}");
            }
        }
    }
}
