//! What Sentinel adds to a request: every standard agent (SQLGuard, APIWatch with its rate
//! limits counting, AuthSentry) judging a typical MagGate request, through `Engine::judge`,
//! which is exactly what the CPU guard runs. Criterion measures the mean and median; the
//! percentile pass before it times single calls to report p50/p99 (target: p99 < 50 µs).
//!
//!     cargo bench -p magmobo-benches --bench sentinel

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

use criterion::{Criterion, criterion_group};
use magmobo::axum::http;
use sentinel::{
    ApiWatch, ApiWatchConfig, AuthSentry, Limit, Sentinel, SentinelConfig, SqlGuardAgent,
};

/// The standard agents with limits no benchmark reaches (buckets still count every call).
fn sentinel() -> Sentinel {
    Sentinel::new(SentinelConfig::default())
        .agent(SqlGuardAgent::new())
        .agent(ApiWatch::new(ApiWatchConfig {
            per_ip: Some(Limit::new(1e12, 1e12)),
            per_identity: Some(Limit::new(1e12, 1e12)),
            ..ApiWatchConfig::default()
        }))
        .agent(AuthSentry::default())
}

fn request(method: &str, uri: &str, json: bool) -> http::request::Parts {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "127.0.0.1:8080")
        .header("user-agent", "supabase-js/2.45.0")
        .header("accept", "application/json")
        .header(
            "apikey",
            "mf_3f9c2a1b7d4e_Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg",
        )
        .header("x-client-info", "supabase-js-web/2.45.0")
        .header("x-request-id", "7b0d9a4e-3c1f-4e8a-9f2d-1a2b3c4d5e6f");
    if json {
        builder = builder.header("content-type", "application/json");
    }
    builder
        .body(())
        .map(|r| r.into_parts().0)
        .unwrap_or_else(|e| panic!("{e}"))
}

const GET: &str = "/rest/v1/users?select=id,name,email&id=eq.42&order=name.asc&limit=20";
const BODY: &str = r#"{"name":"Ada O'Brien","email":"ada@example.com","bio":"Selects the best union of math and poetry","tags":["math","poetry"],"age":36}"#;
const ATTACK: &str = "/rest/v1/users?id=eq.1%27%20OR%20%271%27%3D%271";

struct Case {
    name: &'static str,
    parts: http::request::Parts,
    body: Option<&'static [u8]>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "typical GET (4 query params, 6 headers)",
            parts: request("GET", GET, false),
            body: None,
        },
        Case {
            name: "typical POST (small JSON body)",
            parts: request("POST", "/rest/v1/users", true),
            body: Some(BODY.as_bytes()),
        },
        Case {
            name: "attack GET (blocked by SQLGuard)",
            parts: request("GET", ATTACK, false),
            body: None,
        },
    ]
}

/// Times single calls and prints p50 and p99 in µs.
fn percentiles() {
    let sentinel = sentinel();
    let peer = IpAddr::from([203, 0, 113, 7]);
    for case in cases() {
        for _ in 0..10_000 {
            black_box(sentinel.engine().judge(&case.parts, case.body, peer));
        }
        let mut samples: Vec<u64> = (0..100_000)
            .map(|_| {
                let begun = Instant::now();
                black_box(sentinel.engine().judge(&case.parts, case.body, peer));
                begun.elapsed().as_nanos() as u64
            })
            .collect();
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
        println!(
            "sentinel percentiles: {:<42} p50 {:>6.2} µs  p99 {:>6.2} µs  max {:>8.2} µs",
            case.name,
            at(0.50) as f64 / 1000.0,
            at(0.99) as f64 / 1000.0,
            samples[samples.len() - 1] as f64 / 1000.0
        );
    }
}

fn judge(c: &mut Criterion) {
    let sentinel = sentinel();
    let peer = IpAddr::from([203, 0, 113, 7]);
    let mut group = c.benchmark_group("sentinel_judge");
    for case in cases() {
        group.bench_function(case.name, |b| {
            b.iter(|| black_box(sentinel.engine().judge(&case.parts, case.body, peer)))
        });
    }
    group.finish();
}

criterion_group!(benches, judge);

fn main() {
    percentiles();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
