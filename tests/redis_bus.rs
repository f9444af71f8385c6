//! Two boards sharing events through the Redis bus transport, against the real Redis.

// Tests unwrap freely: a panic with the value is the clearest failure.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use magmobo::bus_redis::RedisBus;
use magmobo::prelude::*;
use magmobo_integration_tests::services::redis_or_skip;

fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("magmobo-test:{test}:{nanos}:")
}

async fn board(url: &str, prefix: &str, instance: &str) -> Motherboard {
    let board = Motherboard::builder()
        .instance_id(instance)
        .bus_transport(RedisBus::new(url).with_prefix(prefix))
        .build()
        .unwrap();
    let report = board.boot().await.unwrap();
    assert!(
        report.steps.iter().any(|s| s.name == "connect_bus (Redis)"),
        "{:?}",
        report.steps
    );
    board
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_boards_share_events_over_redis_without_echo() {
    let Some(url) = redis_or_skip("two_boards_share_events_over_redis_without_echo").await else {
        return;
    };
    let prefix = unique_prefix("share");
    let a = board(&url, &prefix, "board-a").await;
    let b = board(&url, &prefix, "board-b").await;
    let mut on_a = a.bus().subscribe("auth.*").unwrap();
    let mut on_b = b.bus().subscribe("auth.*").unwrap();

    a.bus()
        .publish(
            "auth.login.failed",
            "psu",
            serde_json::json!({ "user": "ada" }),
        )
        .unwrap();
    let remote = tokio::time::timeout(Duration::from_secs(5), on_b.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(remote.topic, "auth.login.failed");
    assert_eq!(remote.origin, "board-a");
    assert_eq!(remote.payload["user"], "ada");
    let local = tokio::time::timeout(Duration::from_secs(1), on_a.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(local.origin, "board-a");

    b.bus()
        .publish(
            "auth.key.rejected",
            "psu",
            serde_json::json!({ "key": "k1" }),
        )
        .unwrap();
    let on_a_event = tokio::time::timeout(Duration::from_secs(5), on_a.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(on_a_event.topic, "auth.key.rejected");
    assert_eq!(on_a_event.origin, "board-b");

    // Neither board sees its own events twice (once locally, once echoed back by Redis).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(on_a.try_recv().is_none(), "board A received an echo");
    let own = tokio::time::timeout(Duration::from_secs(1), on_b.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(own.topic, "auth.key.rejected");
    assert!(on_b.try_recv().is_none(), "board B received an echo");
    // A also heard B's `board.ready` (B booted after A was listening); B heard only A's event.
    assert_eq!(a.bus().stats().received_remote, 2);
    assert_eq!(b.bus().stats().received_remote, 1);

    let health = a.health().await;
    assert_eq!(
        health.bus_transport.unwrap().health.status,
        HealthStatus::Ok
    );

    // Redis drops every subscriber connection (as on a restart): the boards reconnect by
    // themselves and events flow again, with no restart of the boards.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(
        killed >= 2,
        "expected both boards' subscriptions to be killed, got {killed}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut delivered = None;
    while delivered.is_none() && std::time::Instant::now() < deadline {
        a.bus()
            .publish("auth.after.reconnect", "psu", serde_json::json!({}))
            .unwrap();
        if let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(300), on_b.recv()).await
        {
            delivered = Some(event);
        }
    }
    let event = delivered.expect("events did not flow again after Redis dropped the connections");
    assert_eq!(event.topic, "auth.after.reconnect");
    assert_eq!(
        b.health().await.bus_transport.unwrap().health.status,
        HealthStatus::Ok
    );
    a.shutdown(StopMode::Fast).await.unwrap();
    b.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_stops_the_boot_with_mm_post_008() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let board = Motherboard::builder()
        .bus_transport(RedisBus::new("redis://127.0.0.1:1"))
        .build()
        .unwrap();
    let Err(Error::Boot(report)) = board.boot().await else {
        panic!("boot should fail")
    };
    let failure = report.failure().unwrap();
    assert_eq!(failure.code.as_str(), "MM-POST-008");
    assert!(
        failure
            .message
            .contains("cannot reach Redis at redis://127.0.0.1:1"),
        "{}",
        failure.message
    );
}
