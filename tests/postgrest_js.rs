//! MagGate driven by the real `@supabase/postgrest-js` client from npm (tests/js), as an
//! application would use it: filters, order, range with count, single, insert, update,
//! delete and error cases. On SQLite and PostgreSQL.

// Tests unwrap freely: a panic with the value is the clearest failure.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use maggate::{GateConfig, MagGate};
use magmobo::cpu::HyperCpu;
use magmobo::prelude::*;
use magmobo::storage::{SqlStorage, StorageOptions};
use magmobo_integration_tests::services::{in_ci, postgres_or_skip};

const FIXTURE: [&str; 2] = [
    "CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT NOT NULL, pages INTEGER)",
    "INSERT INTO books (id, title, pages) VALUES (1, 'Dune', 412), (2, 'Anna', 50), (3, 'Emma', 200)",
];

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// Installs the client once per run; `None` (only outside CI) when node or npm is missing.
fn npm_ready(test: &str) -> Option<()> {
    let have = |tool: &str| Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
    if !(have("node") && have("npm")) {
        assert!(!in_ci(), "{test}: node and npm are required in CI");
        eprintln!("SKIPPED {test}: node/npm not installed");
        return None;
    }
    static INSTALL: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut installed = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if !*installed {
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(js_dir())
            .status()
            .unwrap();
        assert!(status.success(), "npm install in tests/js failed");
        *installed = true;
    }
    Some(())
}

async fn run_client(database_url: &str) {
    let setup = SqlStorage::connect(database_url, StorageOptions::default()).unwrap();
    for statement in FIXTURE {
        setup.execute(statement, &[]).await.unwrap();
    }
    setup.stop(StopMode::Fast).await.unwrap();

    let storage = SqlStorage::connect(database_url, StorageOptions::default()).unwrap();
    let board = Motherboard::builder()
        .with((HyperCpu::new("127.0.0.1:0".parse().unwrap()), storage))
        .required_extension(MagGate::new(GateConfig { schema_poll: None, ..GateConfig::default() }))
        .build()
        .unwrap();
    let report = board.boot().await.unwrap();
    let rest = format!("{}/rest/v1", report.listening.clone().unwrap());
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node").arg("postgrest.mjs").arg(rest).current_dir(js_dir()).output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "postgrest-js checks failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("13 passed, 0 failed"), "{stdout}");
    board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgrest_js_against_sqlite() {
    if npm_ready("postgrest_js_against_sqlite").is_none() {
        return;
    }
    let path = std::env::temp_dir().join(format!("magmobo-pjs-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    run_client(&format!("sqlite://{}", path.display())).await;
    let _ = std::fs::remove_file(path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgrest_js_against_postgres() {
    if npm_ready("postgrest_js_against_postgres").is_none() {
        return;
    }
    let Some(db) = postgres_or_skip("postgrest_js_against_postgres").await else { return };
    run_client(&db.url).await;
}
