//! `sentinel-corpus`: writes a seeded SQLGuard corpus as JSONL (`{"text","label","category"}`
//! per line) to stdout, so other tools (the training job, ad-hoc analysis) need no Rust.
//!
//! Usage: `sentinel-corpus [--seed N] [--size N] [--split all|train|held-out]`.
//! `--size` is the number of attacks and, separately, of benign values.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use sentinel::corpus::Corpus;

const USAGE: &str = "usage: sentinel-corpus [--seed N] [--size N] [--split all|train|held-out]";

fn main() -> ExitCode {
    let mut seed = 42u64;
    let mut size = 1000usize;
    let mut split = String::from("all");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        let parsed = match (arg.as_str(), value.as_deref()) {
            ("--seed", Some(v)) => v.parse().map(|v| seed = v).is_ok(),
            ("--size", Some(v)) => v.parse().map(|v| size = v).is_ok(),
            ("--split", Some(v @ ("all" | "train" | "held-out"))) => {
                split = v.to_string();
                true
            }
            _ => false,
        };
        if !parsed {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    }
    let corpus = Corpus::generate(seed, size, size);
    let parts = corpus.split(seed, 0.5);
    let samples = match split.as_str() {
        "train" => &parts.train,
        "held-out" => &parts.held_out,
        _ => &corpus.samples,
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for sample in samples {
        if writeln!(out, "{}", sample.to_json()).is_err() {
            // Closed pipe (`| head`): stop quietly.
            return ExitCode::SUCCESS;
        }
    }
    if out.flush().is_err() {
        return ExitCode::SUCCESS;
    }
    ExitCode::SUCCESS
}
