//! SQLGuard layer 2 and the combination: the shipped weights load, clear cases get clear
//! probabilities (so a degraded or unloadable model fails here), the combined guard catches
//! what layer 1 alone misses and vetoes what it wrongly flags, bad weights are errors, and the
//! training code's tensor model hashes and scores exactly like the inference loops.

// Tests unwrap freely: a panic with the value is the clearest failure.
#![allow(clippy::unwrap_used)]

use candle_core::{Device, Tensor};
use sentinel::SqlGuard;
use sentinel::sqlguard::ml::train::{self, Example, TrainConfig, Weights};
use sentinel::sqlguard::ml::{
    self, Classifier, EMBEDDED_METADATA, EMBEDDED_WEIGHTS, FeatureParams, MlError,
};
use sentinel::sqlguard::normalize::normalize;

const ATTACK: bool = true;
const BENIGN: bool = false;

fn model() -> &'static Classifier {
    Classifier::embedded().unwrap()
}

/// Layer 2 alone: clear attacks score at least 0.9, clear benign values at most 0.1.
#[track_caller]
fn check_layer2(input: &str, expected: bool) {
    let p = model().probability(&normalize(input));
    if expected {
        assert!(p >= 0.9, "{input:?}: layer 2 p={p:.3}, expected an attack");
    } else {
        assert!(p <= 0.1, "{input:?}: layer 2 p={p:.3}, expected benign");
    }
}

/// Both layers through the public guard.
#[track_caller]
fn check(input: &str, expected: bool) {
    let verdict = SqlGuard::load().unwrap().inspect(input);
    assert_eq!(
        verdict.attack, expected,
        "input {input:?}: expected attack={expected}, got {verdict:?}"
    );
    assert!((0.0..=1.0).contains(&verdict.confidence));
}

#[test]
fn shipped_weights_load() {
    assert!(Classifier::embedded().is_ok());
    assert!(SqlGuard::load().is_ok());
    let l = SqlGuard::new().layers("1' or '1'='1").unwrap();
    assert!(l.gated && l.layer1 >= 0.9 && l.layer2 >= 0.9, "{l:?}");
    assert!(SqlGuard::layer1_only().layers("x").is_none());
}

#[test]
fn layer2_clear_attacks() {
    check_layer2("1' OR '1'='1", ATTACK);
    check_layer2("' union select username, password from users--", ATTACK);
    check_layer2("1; drop table users--", ATTACK);
    check_layer2("'; waitfor delay '0:0:5'--", ATTACK);
    check_layer2("1 and sleep(5)", ATTACK);
    check_layer2("' and extractvalue(1,concat(0x7e,version()))--", ATTACK);
    check_layer2("admin'--", ATTACK);
    check_layer2("%27%20or%201%3D1--", ATTACK);
    check_layer2("1 UN/**/ION SEL/**/ECT null,version()", ATTACK);
}

#[test]
fn layer2_clear_benign() {
    check_layer2("O'Brien", BENIGN);
    check_layer2("42", BENIGN);
    check_layer2("alice@example.com", BENIGN);
    check_layer2(
        "I had to select the blue one; the red one was out of stock",
        BENIGN,
    );
    check_layer2("Great union meeting today, drop by next week!", BENIGN);
    check_layer2("{\"name\":\"D'Arcy\",\"tags\":[\"a\",\"b\"]}", BENIGN);
    check_layer2("eq.5", BENIGN);
    check_layer2("Это отличный продукт", BENIGN);
    check_layer2("2024-02-29T10:00:00Z", BENIGN);
}

#[test]
fn combined_verdicts() {
    // Layer 1 catches these on its own; the combination must keep them.
    check("1' OR '1'='1", ATTACK);
    check("1 UNION SELECT password FROM users--", ATTACK);
    check("'; exec master..xp_cmdshell 'dir'--", ATTACK);
    // Layer 1 sees the breakout but no known shape; layer 2 recognises the attack.
    check("guest';--\n-", ATTACK);
    check(
        "' and (select case when (1=1) then 1 else 1/0 end)=1--",
        ATTACK,
    );
    check(
        "' and gtid_subset(concat(0x7e,(select version())),1)--",
        ATTACK,
    );
    // Layer 1 flags this prose as a borderline tautology; layer 2 vetoes it.
    check("\"or\" is a conjunction; \"and\" is too", BENIGN);
    check("Press the 'OR' button and then 'AND'", BENIGN);
    // Benign values stay benign.
    check("O'Brien", BENIGN);
    check("--", BENIGN);
    check("SELECT 1;", BENIGN);
    check("Don't drop the union select box", BENIGN);
}

#[test]
fn model_alone_never_blocks_a_value_without_breakout() {
    // Whatever the model says, a value that breaks out of no literal stays under 0.85.
    for v in [
        "--",
        "---",
        "a=1;b=2",
        "select",
        "1=1",
        "sleep",
        "version()",
    ] {
        let c = SqlGuard::new().inspect(v).confidence;
        assert!(c < 0.85, "{v:?}: {c}");
    }
}

#[test]
fn bad_weights_are_errors_not_panics() {
    let garbage = Classifier::from_safetensors(b"not a safetensors file");
    assert!(matches!(garbage, Err(MlError::Weights(_))), "{garbage:?}");
    let truncated = Classifier::from_safetensors(&EMBEDDED_WEIGHTS[..EMBEDDED_WEIGHTS.len() / 2]);
    assert!(matches!(truncated, Err(MlError::Weights(_))));
    assert!(matches!(
        Classifier::from_safetensors(&[]),
        Err(MlError::Weights(_))
    ));
}

fn saved(tensors: &[(&str, Tensor)]) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("sentinel-ml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.safetensors", tensors.len()));
    let map: std::collections::HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    candle_core::safetensors::save(&map, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    bytes
}

#[test]
fn weights_hashed_differently_or_shaped_wrong_are_refused() {
    let dev = Device::Cpu;
    let loaded = candle_core::safetensors::load_buffer(EMBEDDED_WEIGHTS, &dev).unwrap();
    let get = |n: &str| loaded[n].clone();
    let mut other = FeatureParams::CURRENT;
    other.buckets = 8192;
    let wrong_params = Tensor::new(&other.to_array(), &dev).unwrap();
    let bytes = saved(&[
        ("w1", get("w1")),
        ("b1", get("b1")),
        ("w2", get("w2")),
        ("b2", get("b2")),
        ("feature_params", wrong_params),
    ]);
    let err = Classifier::from_safetensors(&bytes).unwrap_err();
    assert!(matches!(err, MlError::FeatureMismatch { .. }), "{err}");
    assert!(err.to_string().contains("sentinel-train"));

    let bytes = saved(&[
        ("w1", get("w1")),
        ("b1", get("b1")),
        ("feature_params", get("feature_params")),
    ]);
    let err = Classifier::from_safetensors(&bytes).unwrap_err();
    assert!(err.to_string().contains("`w2` is missing"), "{err}");
}

const SAMPLE_VALUES: &[&str] = &[
    "",
    "42",
    "O'Brien",
    "1' or '1'='1",
    "%27%20UNION%20SELECT%20null--",
    "Ｓｅｌｅｃｔ  the   BLUE one",
    "日本語のテキスト",
    "a much longer value that goes past the cap: ",
];

#[test]
fn training_forward_and_inference_hash_and_score_alike() {
    let weights = Weights::from_safetensors(EMBEDDED_WEIGHTS).unwrap();
    let mut values: Vec<String> = SAMPLE_VALUES
        .iter()
        .map(|v| normalize(v).into_owned())
        .collect();
    // Past the byte cap, both paths must cut at the same place.
    values.push("x' or 1=1 -- ".repeat(200));
    let z = train::dense_batch(&values)
        .and_then(|x| train::forward(&x, &weights))
        .and_then(|z| z.to_vec1::<f32>())
        .unwrap();
    for (v, z) in values.iter().zip(z) {
        let loops = model().logit(v);
        assert!(
            (loops - z).abs() < 1e-3,
            "{v:?}: tensor logit {z} vs inference logit {loops}"
        );
    }
}

#[test]
fn sidecar_describes_the_shipped_weights() {
    use sha2::{Digest, Sha256};
    let meta: serde_json::Value = serde_json::from_str(EMBEDDED_METADATA).unwrap();
    assert_eq!(meta["version"], ml::MODEL_VERSION);
    assert_eq!(
        meta["weights_sha256"],
        format!("{:x}", Sha256::digest(EMBEDDED_WEIGHTS))
    );
    let f = &meta["features"];
    let p = FeatureParams::CURRENT;
    assert_eq!(f["version"], p.version);
    assert_eq!(f["buckets"], p.buckets);
    assert_eq!(f["ngram"][1], p.max_n);
    assert_eq!(f["max_bytes"], p.max_bytes);
    assert_eq!(f["hash_seed"], format!("{:#x}", ml::features::HASH_SEED));
    assert!(EMBEDDED_WEIGHTS.len() < 1024 * 1024);
}

#[test]
fn a_tiny_training_run_learns_and_round_trips() {
    let mut examples = Vec::new();
    for i in 0..40 {
        examples.push(Example {
            normalized: format!("{i}' or '{i}'='{i}"),
            attack: true,
        });
        examples.push(Example {
            normalized: format!("order {i} shipped to o'brien"),
            attack: false,
        });
    }
    let mut losses = Vec::new();
    let config = TrainConfig {
        epochs: 3,
        batch: 16,
        learning_rate: 1e-2,
        ..TrainConfig::default()
    };
    let weights = train::train(&examples, config, |_, loss, _| losses.push(loss)).unwrap();
    assert!(losses[2] < losses[0], "loss did not fall: {losses:?}");
    let dir = std::env::temp_dir().join(format!("sentinel-ml-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiny.safetensors");
    weights.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let model = Classifier::from_safetensors(&bytes).unwrap();
    assert!(model.probability("7' or '7'='7") > 0.5);
    assert!(model.probability("order 7 shipped to o'brien") < 0.5);
    assert!(matches!(
        train::train(&[], config, |_, _, _| {}),
        Err(MlError::Training(_))
    ));
}
