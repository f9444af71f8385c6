//! The MQTT peripheral against the real Mosquitto broker: telemetry published by a device
//! lands in a table through MagGate's write path under the device's API key; malformed and
//! refused messages go to the dead-letter topic with their reason; table changes come back
//! out as MQTT messages.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use maggate::{GateConfig, MagGate};
use magmobo::auth::{ApiKeyAuth, AuthOptions, KeyStore};
use magmobo::cpu::HyperCpu;
use magmobo::mqtt::{Ingest, Mqtt, MqttOptions, MqttStats, Publish};
use magmobo::prelude::*;
use magmobo::storage::{SqlStorage, StorageOptions};
use magmobo_integration_tests::services::mqtt_or_skip;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::Value as Json;
use tokio::sync::mpsc;

/// A device-side client subscribed to `filters`; every message arrives on the channel.
async fn observer(
    url: &str,
    id: &str,
    filters: &[String],
) -> (AsyncClient, mpsc::Receiver<(String, Json)>) {
    let host_port = url
        .trim_start_matches("mqtt://")
        .trim_start_matches("tcp://");
    let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, "1883"));
    let options = rumqttc::MqttOptions::new(id, host, port.parse().unwrap());
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let (tx, rx) = mpsc::channel(64);
    let (ready_tx, mut ready_rx) = mpsc::channel(1);
    let subscriber = client.clone();
    let filters = filters.to_vec();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    for f in &filters {
                        subscriber
                            .subscribe(f.clone(), QoS::AtLeastOnce)
                            .await
                            .unwrap();
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ready_tx.try_send(());
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let body = serde_json::from_slice(&p.payload).unwrap_or(Json::Null);
                    if tx.send((p.topic.clone(), body)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready_rx.recv())
        .await
        .expect("the observer subscribes");
    (client, rx)
}

async fn next_on(rx: &mut mpsc::Receiver<(String, Json)>, topic: &str) -> Json {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (t, body) = rx.recv().await.unwrap();
            if t == topic {
                return body;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no message on {topic}"))
}

async fn wait_for(
    stats: &magmobo::mqtt::MqttStatsHandle,
    done: impl Fn(&MqttStats) -> bool,
) -> MqttStats {
    for _ in 0..200 {
        let s = stats.snapshot();
        if done(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("counters never got there: {:?}", stats.snapshot());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_lands_in_tables_and_changes_go_back_out() {
    let Some(url) = mqtt_or_skip("telemetry_lands_in_tables_and_changes_go_back_out").await else {
        return;
    };
    let run = format!("magmobo-test/{}-{}", std::process::id(), rand_suffix());
    let path = std::env::temp_dir().join(format!("mqtt-{}.db", run.replace('/', "-")));
    let _ = std::fs::remove_file(&path);
    let db_url = format!("sqlite://{}", path.display());

    // The table and a device key, created before the board boots.
    let setup = Arc::new(SqlStorage::connect(&db_url, StorageOptions::default()).unwrap());
    setup
        .execute(
            "CREATE TABLE readings (id INTEGER PRIMARY KEY, device TEXT NOT NULL, temp REAL)",
            &[],
        )
        .await
        .unwrap();
    let keys = KeyStore::new(setup.clone());
    keys.install().await.unwrap();
    let device_key = keys.create("sensor-1", "device", None).await.unwrap().full;

    let mqtt = Mqtt::new(MqttOptions {
        url: url.clone(),
        client_id: format!("board-{}", rand_suffix()),
        ingest: vec![
            Ingest {
                topic: format!("{run}/+/telemetry"),
                table: "readings".into(),
                api_key: device_key,
            },
            Ingest {
                topic: format!("{run}/intruder"),
                table: "readings".into(),
                api_key: "mf_0000000000_not-a-real-key".into(),
            },
        ],
        publish: vec![Publish {
            events: "table.*.changed".into(),
            topic_prefix: format!("{run}/out"),
        }],
        dead_letter_topic: format!("{run}/dead"),
        ..MqttOptions::default()
    });
    let stats = mqtt.stats();
    let board = Motherboard::builder()
        .with(HyperCpu::new("127.0.0.1:0".parse().unwrap()))
        .with(SqlStorage::connect(&db_url, StorageOptions::default()).unwrap())
        .with(ApiKeyAuth::new(AuthOptions::default()))
        .extension(MagGate::new(GateConfig {
            schema_poll: None,
            ..GateConfig::default()
        }))
        .with(mqtt)
        .build()
        .unwrap();
    board.boot().await.unwrap();
    wait_for(&stats, |s| s.connected).await;
    // The board subscribes on connect; give the broker a moment to register it.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let out = format!("{run}/out/table/readings/changed");
    let dead = format!("{run}/dead");
    let (device, mut seen) = observer(
        &url,
        &format!("obs-{}", rand_suffix()),
        &[out.clone(), dead.clone()],
    )
    .await;
    let publish = |topic: String, body: &str| {
        let device = device.clone();
        let body = body.to_owned();
        async move {
            device
                .publish(topic, QoS::AtLeastOnce, false, body)
                .await
                .unwrap()
        }
    };

    // One reading, then a batch of two: rows appear, and a change event goes back out.
    publish(
        format!("{run}/s1/telemetry"),
        r#"{"device":"s1","temp":21.5}"#,
    )
    .await;
    let change = next_on(&mut seen, &out).await;
    assert_eq!(change["topic"], "table.readings.changed", "{change}");
    publish(
        format!("{run}/s2/telemetry"),
        r#"[{"device":"s2","temp":19.0},{"device":"s2","temp":19.25}]"#,
    )
    .await;
    wait_for(&stats, |s| s.ingested == 2).await;
    let rows = setup
        .query("SELECT device, temp FROM readings ORDER BY id", &[])
        .await
        .unwrap();
    let got: Vec<String> = rows.iter().map(|r| r.get_text("device").unwrap()).collect();
    assert_eq!(got, ["s1", "s2", "s2"]);

    // Not JSON: dead-lettered as malformed, with the payload kept.
    publish(format!("{run}/s1/telemetry"), "temp=21.5").await;
    let letter = next_on(&mut seen, &dead).await;
    assert_eq!(letter["reason"], "malformed", "{letter}");
    assert_eq!(letter["payload"], "temp=21.5");

    // JSON MagGate refuses: an unknown column (400 with PostgREST's code)...
    publish(
        format!("{run}/s1/telemetry"),
        r#"{"device":"s1","humidity":40}"#,
    )
    .await;
    let letter = next_on(&mut seen, &dead).await;
    assert_eq!(letter["reason"], "rejected", "{letter}");
    assert_eq!(letter["status"], 400);
    assert_eq!(letter["error"]["code"], "PGRST204");

    // ...and a device whose key the PSU does not know (401).
    publish(format!("{run}/intruder"), r#"{"device":"x","temp":99}"#).await;
    let letter = next_on(&mut seen, &dead).await;
    assert_eq!(letter["status"], 401, "{letter}");

    let s = wait_for(&stats, |s| s.rejected == 2).await;
    assert_eq!(
        (s.received, s.ingested, s.malformed, s.rejected),
        (5, 2, 1, 2),
        "{s:?}"
    );
    let count = setup
        .query("SELECT count(*) AS n FROM readings", &[])
        .await
        .unwrap();
    assert_eq!(
        count[0].get_int("n").unwrap(),
        3,
        "refused messages wrote nothing"
    );
    assert!(s.published >= 2, "{s:?}");

    board.shutdown(StopMode::Fast).await.unwrap();
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn a_bad_broker_url_shows_on_the_post_screen_with_the_fix() {
    let board = Motherboard::builder()
        .with(HyperCpu::new("127.0.0.1:0".parse().unwrap()))
        .with(Mqtt::new(MqttOptions {
            url: "http://broker/x".into(),
            ..MqttOptions::default()
        }))
        .build()
        .unwrap();
    // A peripheral is optional: the board boots degraded, and the POST line says why.
    let report = board.boot().await.unwrap();
    let line = &report.peripherals[0];
    let detail = line.detail.clone().unwrap_or_default();
    assert!(detail.contains("mqtt://host:port"), "{detail}");
    assert!(
        matches!(report.outcome, magmobo::bios::Outcome::Degraded { .. }),
        "{:?}",
        report.outcome
    );
    board.shutdown(StopMode::Fast).await.unwrap();
}

fn rand_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{nanos:x}")
}
