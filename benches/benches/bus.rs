//! Bus publish-to-delivery: one event published and received by one exact subscriber, and
//! fanned out to ten wildcard subscribers among fifty non-matching ones.

use criterion::{Criterion, criterion_group, criterion_main};
use magmobo::bus::Bus;

fn publish_to_delivery(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let bus = Bus::new("bench", 1024);
    let mut subscriber = bus.subscribe("database.query.executed").expect("subscribe");
    let payload = serde_json::json!({ "table": "orders", "rows": 20 });
    c.bench_function("bus/publish_to_delivery/1_subscriber", |b| {
        b.iter(|| {
            runtime.block_on(async {
                bus.publish("database.query.executed", "bench", payload.clone())
                    .expect("publish");
                subscriber.recv().await.expect("delivered")
            })
        })
    });

    let bus = Bus::new("bench", 1024);
    let _others: Vec<_> = (0..50)
        .map(|i| {
            bus.subscribe(&format!("other.topic{i}.*"))
                .expect("subscribe")
        })
        .collect();
    let mut fans: Vec<_> = (0..10)
        .map(|_| bus.subscribe("auth.*").expect("subscribe"))
        .collect();
    c.bench_function("bus/publish_to_delivery/10_of_60_wildcard", |b| {
        b.iter(|| {
            bus.publish("auth.login.failed", "bench", payload.clone())
                .expect("publish");
            for fan in fans.iter_mut() {
                fan.try_recv().expect("delivered");
            }
        })
    });
}

criterion_group!(benches, publish_to_delivery);
criterion_main!(benches);
