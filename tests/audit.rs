//! The audit log on real storage: events on the bus become hash-chained entries, every kind of
//! tampering is detected, and events the bus drops are recorded as an overflow, not lost
//! silently; several writers on one table keep one chain. SQLite, PostgreSQL and MariaDB.

// Tests unwrap freely: a panic with the value is the clearest failure.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use magmobo::prelude::*;
use magmobo::storage::{SqlStorage, StorageOptions};
use magmobo_integration_tests::services::{mysql_or_skip, postgres_or_skip};
use sentinel::audit::{AuditFilter, AuditLog, AuditStore, NewEntry};

fn temp_sqlite() -> (String, std::path::PathBuf) {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let path = std::env::temp_dir().join(format!(
        "magmobo-audit-{}-{n}-{nanos}.db",
        std::process::id()
    ));
    (format!("sqlite://{}", path.display()), path)
}

async fn wait_for_entries(store: &AuditStore, count: usize) -> Vec<sentinel::audit::AuditEntry> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let entries = store.query(&AuditFilter::default()).await.unwrap();
        if entries.len() >= count || std::time::Instant::now() > deadline {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn scenario(url: &str) {
    let storage = SqlStorage::connect(url, StorageOptions::default()).unwrap();
    let board = Motherboard::builder()
        .with(storage)
        .extension(AuditLog::default())
        .build()
        .unwrap();
    board.boot().await.unwrap();
    let bus = board.bus();
    let threat = serde_json::json!({
        "agent": "SQLGuard", "kind": "sql_injection", "action": "blocked", "confidence": 0.97,
        "parameter": "id", "source": "203.0.113.9", "evidence": "single-quote: s&s=s",
    });
    bus.publish("threat.detected", "SQLGuard", threat).unwrap();
    bus.publish(
        "auth.key.rejected",
        "psu",
        serde_json::json!({ "code": "invalid_api_key", "key_id": "3f9c2a1b7d4e" }),
    )
    .unwrap();
    bus.publish("table.notes.changed", "maggate", serde_json::json!({}))
        .unwrap();

    let store = AuditStore::new(board.storage().unwrap());
    // extension.installed (the audit log's own mount) + the two security events; table
    // changes are not security events and are not recorded.
    let entries = wait_for_entries(&store, 3).await;
    // Events of different topics travel through different subscriptions, so their relative
    // order within the same millisecond is not guaranteed; compare them by kind.
    let mut kinds: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
    kinds.sort();
    let expected = [
        "auth.key.rejected",
        "extension.installed",
        "threat.detected",
    ];
    assert_eq!(kinds, expected, "{entries:#?}");
    let of = |kind: &str| entries.iter().find(|e| e.kind == kind).unwrap();
    let threat = of("threat.detected");
    assert_eq!(
        threat.summary,
        "SQLGuard blocked sql_injection in 'id' (confidence 0.97)"
    );
    assert_eq!(threat.source.as_deref(), Some("203.0.113.9"));
    assert_eq!(
        of("auth.key.rejected").identity.as_deref(),
        Some("3f9c2a1b7d4e")
    );
    assert_eq!(
        of("extension.installed").summary,
        "extension.installed: audit"
    );
    let by_source = store
        .query(&AuditFilter {
            source: Some("203.0.113.9".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(by_source.len(), 1);
    let threats = store
        .query(&AuditFilter {
            kind: Some("threat".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(threats.len(), 1);
    assert_eq!(store.verify().await.unwrap().broken, None);
    board.shutdown(StopMode::Fast).await.unwrap();

    let db: Arc<dyn Storage> =
        Arc::new(SqlStorage::connect(url, StorageOptions::default()).unwrap());
    let store = AuditStore::new(db.clone());
    // An edit is found at the edited entry.
    db.execute(
        "UPDATE _magmobo_audit SET summary = 'nothing to see' WHERE seq = 2",
        &[],
    )
    .await
    .unwrap();
    let report = store.verify().await.unwrap();
    let (seq, why) = report.broken.expect("edit detected");
    assert_eq!(seq, 2);
    assert!(why.contains("edited"), "{why}");
    // A deletion is found as a gap.
    db.execute("DELETE FROM _magmobo_audit WHERE seq = 2", &[])
        .await
        .unwrap();
    let (seq, why) = store
        .verify()
        .await
        .unwrap()
        .broken
        .expect("deletion detected");
    assert_eq!(seq, 3);
    assert!(why.contains("deleted"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_on_sqlite() {
    let (url, path) = temp_sqlite();
    scenario(&url).await;
    let _ = std::fs::remove_file(path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_on_postgres() {
    let Some(db) = postgres_or_skip("audit_log_on_postgres").await else {
        return;
    };
    scenario(&db.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_dropped_by_the_bus_are_recorded_as_overflow() {
    let (url, path) = temp_sqlite();
    let storage = SqlStorage::connect(&url, StorageOptions::default()).unwrap();
    let board = Motherboard::builder()
        .bus_capacity(4)
        .with(storage)
        .extension(AuditLog::new(vec!["threat.*".into()]))
        .build()
        .unwrap();
    board.boot().await.unwrap();
    // Published in one burst without yielding: the 4-slot queue overflows.
    for i in 0..50 {
        board
            .bus()
            .publish("threat.detected", "test", serde_json::json!({ "n": i }))
            .unwrap();
    }
    let store = AuditStore::new(board.storage().unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (kept, dropped) = loop {
        let entries = store.query(&AuditFilter::default()).await.unwrap();
        let kept = entries
            .iter()
            .filter(|e| e.kind == "threat.detected")
            .count() as u64;
        let dropped: u64 = entries
            .iter()
            .filter(|e| e.kind == "audit.overflow")
            .map(|e| {
                serde_json::from_str::<serde_json::Value>(&e.detail).unwrap()["dropped"]
                    .as_u64()
                    .unwrap()
            })
            .sum();
        if kept + dropped >= 50 || std::time::Instant::now() > deadline {
            break (kept, dropped);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(dropped > 0, "the burst should have overflowed the queue");
    assert_eq!(
        kept + dropped,
        50,
        "every event is either written or counted as dropped"
    );
    assert_eq!(store.verify().await.unwrap().broken, None);
    board.shutdown(StopMode::Fast).await.unwrap();
    let _ = std::fs::remove_file(path);
}

/// Several instances sharing one audit table (two writers on separate connection pools,
/// appending at the same time) take turns on the append lock: every entry lands, the
/// sequence has no gaps or duplicates, and the chain verifies.
async fn writers_share_one_table(url: &str) {
    let stores: Vec<AuditStore> = (0..2)
        .map(|_| {
            AuditStore::new(Arc::new(
                SqlStorage::connect(url, StorageOptions::default()).unwrap(),
            ))
        })
        .collect();
    stores[0].install().await.unwrap();
    stores[1].install().await.unwrap();
    let writer = |store: AuditStore, who: &'static str| async move {
        for batch in 0..15 {
            let entries: Vec<NewEntry> = (0..3)
                .map(|i| NewEntry {
                    at_ms: 1_700_000_000_000 + batch * 10 + i,
                    kind: "audit.test".into(),
                    identity: Some(who.into()),
                    source: None,
                    summary: format!("{who} batch {batch} entry {i}"),
                    detail: serde_json::json!({ "batch": batch }),
                })
                .collect();
            store.append(&entries).await.unwrap();
        }
    };
    tokio::join!(
        writer(stores[0].clone(), "instance-a"),
        writer(stores[1].clone(), "instance-b")
    );
    let report = stores[0].verify().await.unwrap();
    assert_eq!(report.broken, None, "{report:?}");
    assert_eq!(report.checked, 90, "{report:?}");
    let entries = stores[1]
        .query(&AuditFilter {
            limit: Some(1000),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let seqs: Vec<i64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=90).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_share_one_table_on_sqlite() {
    let (url, path) = temp_sqlite();
    writers_share_one_table(&url).await;
    let _ = std::fs::remove_file(path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_share_one_table_on_postgres() {
    let Some(db) = postgres_or_skip("writers_share_one_table_on_postgres").await else {
        return;
    };
    writers_share_one_table(&db.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_share_one_table_on_mariadb() {
    let Some(db) = mysql_or_skip("writers_share_one_table_on_mariadb").await else {
        return;
    };
    writers_share_one_table(&db.url).await;
}
