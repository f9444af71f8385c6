//! MagGate driven by the real `@supabase/postgrest-js` client from npm (tests/js), as an
//! application would use it: filters, order, range with count, single, embedding, upsert,
//! insert, update, delete, RPC (PostgreSQL) and error cases. On SQLite and PostgreSQL.

// Tests unwrap freely: a panic with the value is the clearest failure.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use maggate::{GateConfig, MagGate};
use magmobo::cpu::HyperCpu;
use magmobo::prelude::*;
use magmobo::storage::{SqlStorage, StorageOptions};
use magmobo_integration_tests::node::{js_dir, npm_ready};
use magmobo_integration_tests::services::postgres_or_skip;

const FIXTURE: [&str; 4] = [
    "CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
    "CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT NOT NULL, pages INTEGER, \
     author_id INTEGER REFERENCES authors (id))",
    "INSERT INTO authors (id, name) VALUES (1, 'Herbert'), (2, 'Austen')",
    "INSERT INTO books (id, title, pages, author_id) VALUES (1, 'Dune', 412, 1), (2, 'Anna', 50, 2), (3, 'Emma', 200, 2)",
];

const POSTGRES_FUNCTIONS: [&str; 2] = [
    "CREATE FUNCTION books_longer_than(min_pages integer) RETURNS SETOF books \
     LANGUAGE sql STABLE AS $$ SELECT * FROM books WHERE pages > min_pages $$",
    "CREATE FUNCTION add(a integer, b integer) RETURNS integer \
     LANGUAGE sql IMMUTABLE AS $$ SELECT a + b $$",
];

async fn run_client(database_url: &str, postgres: bool) {
    let setup = SqlStorage::connect(database_url, StorageOptions::default()).unwrap();
    let functions: &[&str] = if postgres { &POSTGRES_FUNCTIONS } else { &[] };
    for statement in FIXTURE.iter().chain(functions) {
        setup.execute(statement, &[]).await.unwrap();
    }
    setup.stop(StopMode::Fast).await.unwrap();

    let storage = SqlStorage::connect(database_url, StorageOptions::default()).unwrap();
    let board = Motherboard::builder()
        .with((HyperCpu::new("127.0.0.1:0".parse().unwrap()), storage))
        .required_extension(MagGate::new(GateConfig {
            schema_poll: None,
            ..GateConfig::default()
        }))
        .build()
        .unwrap();
    let report = board.boot().await.unwrap();
    let rest = format!("{}/rest/v1", report.listening.clone().unwrap());
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("postgrest.mjs")
            .arg(rest)
            .arg(if postgres { "postgres" } else { "other" })
            .current_dir(js_dir())
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "postgrest-js checks failed:\n{stdout}\n{stderr}"
    );
    let expected = if postgres {
        "21 passed, 0 failed"
    } else {
        "19 passed, 0 failed"
    };
    assert!(stdout.contains(expected), "{stdout}");
    board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgrest_js_against_sqlite() {
    if npm_ready("postgrest_js_against_sqlite").is_none() {
        return;
    }
    let path = std::env::temp_dir().join(format!("magmobo-pjs-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    run_client(&format!("sqlite://{}", path.display()), false).await;
    let _ = std::fs::remove_file(path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgrest_js_against_postgres() {
    if npm_ready("postgrest_js_against_postgres").is_none() {
        return;
    }
    let Some(db) = postgres_or_skip("postgrest_js_against_postgres").await else {
        return;
    };
    run_client(&db.url, true).await;
}
