//! The system bus: wildcard delivery, typed events, request/response with timeouts, and the
//! overflow policy (a full subscriber loses events, counted as lag; publishers never wait).

// Tests unwrap freely: a panic with the value is the clearest failure.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use magmobo::Error;
use magmobo::bus::{Bus, BusEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct LoginFailed {
    user: String,
    attempts: u32,
}

impl BusEvent for LoginFailed {
    const TOPIC: &'static str = "auth.login.failed";
}

async fn next_topic(sub: &mut magmobo::bus::Subscription) -> Option<String> {
    tokio::time::timeout(Duration::from_millis(200), sub.recv())
        .await
        .ok()
        .flatten()
        .map(|e| e.topic.clone())
}

#[tokio::test]
async fn wildcard_subscribers_get_exactly_the_matching_topics() {
    let bus = Bus::new("test", 64);
    let mut auth = bus.subscribe("auth.*").unwrap();
    let mut failed = bus.subscribe("*.login.failed").unwrap();
    let mut exact = bus.subscribe("auth.login.succeeded").unwrap();
    let mut all = bus.subscribe("*").unwrap();

    for topic in [
        "auth.login.failed",
        "auth.login.succeeded",
        "db.query.executed",
        "auth.key.rejected",
    ] {
        bus.publish(topic, "test", serde_json::json!({ "t": topic }))
            .unwrap();
    }

    let mut got = Vec::new();
    while let Some(t) = next_topic(&mut auth).await {
        got.push(t);
    }
    assert_eq!(
        got,
        [
            "auth.login.failed",
            "auth.login.succeeded",
            "auth.key.rejected"
        ]
    );
    assert_eq!(
        next_topic(&mut failed).await.as_deref(),
        Some("auth.login.failed")
    );
    assert_eq!(next_topic(&mut failed).await, None);
    assert_eq!(
        next_topic(&mut exact).await.as_deref(),
        Some("auth.login.succeeded")
    );
    assert_eq!(next_topic(&mut exact).await, None);
    let mut count = 0;
    while next_topic(&mut all).await.is_some() {
        count += 1;
    }
    assert_eq!(count, 4);
    let stats = bus.stats();
    assert_eq!(stats.published, 4);
    assert_eq!(stats.delivered, 3 + 1 + 1 + 4);
}

#[tokio::test]
async fn typed_events_round_trip_and_bad_payloads_are_errors_not_panics() {
    let bus = Bus::new("test", 8);
    let mut sub = bus.subscribe_to::<LoginFailed>().unwrap();
    let event = LoginFailed {
        user: "ada".into(),
        attempts: 3,
    };
    bus.emit("psu", &event).unwrap();
    assert_eq!(sub.recv().await.unwrap().unwrap(), event);

    bus.publish(
        LoginFailed::TOPIC,
        "someone",
        serde_json::json!({ "user": 5 }),
    )
    .unwrap();
    let err = sub.recv().await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Payload { .. }), "{err}");
}

#[tokio::test]
async fn publishing_to_malformed_or_wildcard_topics_is_refused() {
    let bus = Bus::new("test", 8);
    for topic in ["", "auth..failed", "auth.*", "with space"] {
        let err = bus
            .publish(topic, "t", serde_json::Value::Null)
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidTopic { .. }),
            "{topic:?}: {err}"
        );
    }
    assert!(bus.subscribe("a..b").is_err());
}

#[tokio::test]
async fn request_gets_the_reply_or_a_timeout_or_no_responder() {
    let bus = Bus::new("test", 8);
    let _echo = bus
        .respond("math.double", |event| async move {
            let n = event.payload.as_i64().unwrap_or(0);
            Ok(serde_json::json!(n * 2))
        })
        .unwrap();
    let _slow = bus
        .respond("slow.*", |_| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(serde_json::Value::Null)
        })
        .unwrap();

    let reply = bus
        .request(
            "math.double",
            "t",
            serde_json::json!(21),
            Duration::from_secs(1),
        )
        .await;
    assert_eq!(reply.unwrap(), serde_json::json!(42));

    let started = std::time::Instant::now();
    let err = bus
        .request(
            "slow.thing",
            "t",
            serde_json::Value::Null,
            Duration::from_millis(100),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BusTimeout { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the timeout was not honoured"
    );

    let err = bus
        .request(
            "nobody.home",
            "t",
            serde_json::Value::Null,
            Duration::from_secs(1),
        )
        .await;
    assert!(matches!(err, Err(Error::NoResponder { .. })));
}

#[tokio::test]
async fn dropping_a_responder_unregisters_it() {
    let bus = Bus::new("test", 8);
    let guard = bus
        .respond("x.y", |_| async { Ok(serde_json::json!(1)) })
        .unwrap();
    assert!(
        bus.request("x.y", "t", serde_json::Value::Null, Duration::from_secs(1))
            .await
            .is_ok()
    );
    drop(guard);
    let err = bus
        .request("x.y", "t", serde_json::Value::Null, Duration::from_secs(1))
        .await;
    assert!(matches!(err, Err(Error::NoResponder { .. })));
}

#[tokio::test]
async fn a_full_subscriber_loses_events_counted_as_lag_while_others_get_everything() {
    let bus = Bus::new("test", 4);
    let mut slow = bus.subscribe("load.*").unwrap();
    let mut fast = bus.subscribe("load.*").unwrap();
    let drain = tokio::spawn(async move {
        let mut n = 0;
        while n < 100 {
            if fast.recv().await.is_none() {
                break;
            }
            n += 1;
        }
        n
    });
    for i in 0..100 {
        bus.publish("load.tick", "t", serde_json::json!(i)).unwrap();
        // Give the fast subscriber a chance to keep up; the slow one never reads.
        tokio::task::yield_now().await;
    }
    assert_eq!(
        drain.await.unwrap(),
        100,
        "the fast subscriber must receive every event"
    );
    assert_eq!(
        slow.lagged(),
        96,
        "4 fit in the queue, 96 were dropped for the slow one"
    );
    let stats = bus.stats();
    assert_eq!(stats.dropped, 96);
    assert_eq!(stats.max_subscriber_lag, 96);
    // What was kept is the oldest four, in order: the queue never grew past its capacity.
    for expected in 0..4 {
        assert_eq!(
            slow.recv().await.unwrap().payload,
            serde_json::json!(expected)
        );
    }
    assert!(slow.try_recv().is_none());
}

#[tokio::test]
async fn dropped_subscriptions_are_removed() {
    let bus = Bus::new("test", 4);
    let a = bus.subscribe("a.*").unwrap();
    let _b = bus.subscribe("b.*").unwrap();
    assert_eq!(bus.stats().subscribers, 2);
    drop(a);
    assert_eq!(bus.stats().subscribers, 1);
    bus.publish("a.x", "t", serde_json::Value::Null).unwrap();
    assert_eq!(bus.stats().delivered, 0);
}
