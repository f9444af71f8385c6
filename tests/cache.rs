//! The RAM slot drivers against one table of behaviours (get, set, delete, TTL, prefix and tag
//! invalidation, counters), run on the moka cache and on the real Redis; then the Redis
//! cache's pass-through while Redis is away and its recovery when it returns.

// Tests unwrap freely: a panic with the value is the clearest failure.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use magmobo::cache::{CacheStats, MokaCache, RedisCache};
use magmobo::prelude::*;
use magmobo::roles::cache::SetOptions;
use magmobo_integration_tests::services::redis_or_skip;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One step of a case and what it must return.
#[derive(Debug, Clone)]
enum Step {
    Set(
        &'static str,
        &'static str,
        Option<u64>,
        &'static [&'static str],
    ),
    Get(&'static str, Option<&'static str>),
    Delete(&'static str, bool),
    Sleep(u64),
    Prefix(&'static str, u64),
    Tag(&'static str, u64),
    Stats(u64, u64),
}

use Step::*;

const CASES: &[(&str, &[Step])] = &[
    (
        "set then get; missing keys miss",
        &[
            Set("a", "1", None, &[]),
            Get("a", Some("1")),
            Get("b", None),
            Stats(1, 1),
        ],
    ),
    (
        "overwrite replaces the value",
        &[
            Set("a", "1", None, &[]),
            Set("a", "2", None, &[]),
            Get("a", Some("2")),
        ],
    ),
    (
        "delete says whether the key was there",
        &[
            Set("a", "1", None, &[]),
            Delete("a", true),
            Delete("a", false),
            Get("a", None),
            Stats(0, 1),
        ],
    ),
    (
        "per-entry TTL expires only that entry",
        &[
            Set("short", "1", Some(150), &[]),
            Set("long", "2", Some(10_000), &[]),
            Get("short", Some("1")),
            Sleep(400),
            Get("short", None),
            Get("long", Some("2")),
        ],
    ),
    (
        "default TTL applies when none is given",
        &[Set("d", "1", None, &[]), Sleep(900), Get("d", None)],
    ),
    (
        "prefix invalidation removes only matching keys, literally",
        &[
            Set("user:1", "a", Some(10_000), &[]),
            Set("user:2", "b", Some(10_000), &[]),
            Set("user*", "c", Some(10_000), &[]),
            Set("post:1", "d", Some(10_000), &[]),
            Prefix("user:", 2),
            Get("user:1", None),
            Get("user*", Some("c")),
            Get("post:1", Some("d")),
            Prefix("nothing:", 0),
        ],
    ),
    (
        "tag invalidation removes tagged keys and counts only live ones",
        &[
            Set("p1", "a", Some(10_000), &["posts"]),
            Set("p2", "b", Some(10_000), &["posts", "hot"]),
            Set("u1", "c", Some(10_000), &["users"]),
            Delete("p1", true),
            Tag("posts", 1),
            Get("p2", None),
            Get("u1", Some("c")),
            Tag("posts", 0),
            Tag("hot", 0),
        ],
    ),
];

async fn check(cache: &dyn Cache, stats: &dyn Fn() -> CacheStats, case: &str, steps: &[Step]) {
    for step in steps {
        let context = format!("{case}: {step:?}");
        match *step {
            Set(key, value, ttl, tags) => {
                let options = SetOptions {
                    ttl: ttl.map(Duration::from_millis),
                    tags: tags.iter().map(|t| (*t).to_owned()).collect(),
                };
                cache.set(key, Bytes::from(value), options).await.unwrap();
            }
            Get(key, expected) => {
                let got = cache.get(key).await.unwrap();
                assert_eq!(got, expected.map(Bytes::from), "{context}");
            }
            Delete(key, expected) => {
                assert_eq!(cache.delete(key).await.unwrap(), expected, "{context}")
            }
            Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            Prefix(prefix, expected) => {
                let removed = cache.invalidate_prefix(prefix).await.unwrap();
                assert_eq!(removed, expected, "{context}");
            }
            Tag(tag, expected) => {
                assert_eq!(
                    cache.invalidate_tag(tag).await.unwrap(),
                    expected,
                    "{context}"
                )
            }
            Stats(hits, misses) => {
                let now = stats();
                assert_eq!((now.hits, now.misses), (hits, misses), "{context}");
            }
        }
    }
}

fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("magmobo-test:{test}:{nanos}:")
}

const DEFAULT_TTL: Duration = Duration::from_millis(500);

#[tokio::test]
async fn moka_cache_behaves_per_the_table() {
    for (case, steps) in CASES {
        // A fresh cache per case, so counters and keys start at zero.
        let cache = MokaCache::new(1_000).with_default_ttl(DEFAULT_TTL);
        check(&cache, &|| cache.stats(), case, steps).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cache_behaves_per_the_table() {
    let Some(url) = redis_or_skip("redis_cache_behaves_per_the_table").await else {
        return;
    };
    for (n, (case, steps)) in CASES.iter().enumerate() {
        let cache = RedisCache::new(url.clone())
            .with_prefix(unique_prefix(&format!("table{n}")))
            .with_default_ttl(DEFAULT_TTL);
        cache.connect().await.unwrap();
        check(&cache, &|| cache.stats(), case, steps).await;
        assert_eq!(cache.stats().errors, 0, "{case}");
    }
}

#[tokio::test]
async fn moka_cache_reports_its_counters_in_health() {
    let cache = MokaCache::new(10);
    cache
        .set("k", Bytes::from("v"), SetOptions::default())
        .await
        .unwrap();
    cache.get("k").await.unwrap();
    cache.get("x").await.unwrap();
    let health = cache.health().await;
    assert_eq!(health.status, HealthStatus::Ok);
    assert!(
        health.detail.unwrap().contains("1 hits, 1 misses"),
        "{:?}",
        cache.stats()
    );
}

/// A TCP proxy in front of Redis that can be cut and restored on the same port, so the cache
/// sees a real outage and a real reconnection without disturbing other Redis clients.
struct Proxy {
    port: u16,
    target: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Proxy {
            port,
            target,
            tasks: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let tasks = self.tasks.clone();
        let target = self.target.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(pipe);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Closes the listener and every proxied connection.
    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    async fn restore(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }
}

async fn eventually(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cache_passes_through_while_redis_is_away_and_recovers() {
    let Some(url) = redis_or_skip("redis_cache_passes_through_while_redis_is_away").await else {
        return;
    };
    let target = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let proxy = Proxy::start(target).await;
    let cache = RedisCache::new(format!("redis://127.0.0.1:{}", proxy.port))
        .with_prefix(unique_prefix("degrade"))
        .with_timeout(Duration::from_millis(300));
    cache.connect().await.unwrap();
    let ten_s = || SetOptions {
        ttl: Some(Duration::from_secs(10)),
        tags: vec![],
    };
    cache.set("k", Bytes::from("v"), ten_s()).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), Some(Bytes::from("v")));
    assert_eq!(cache.health().await.status, HealthStatus::Ok);

    proxy.cut();
    // Every call keeps succeeding: misses and no-ops instead of errors.
    assert_eq!(cache.get("k").await.unwrap(), None);
    cache.set("k2", Bytes::from("x"), ten_s()).await.unwrap();
    assert!(!cache.delete("k").await.unwrap());
    assert!(cache.is_degraded());
    let health = cache.health().await;
    assert_eq!(health.status, HealthStatus::Degraded, "{health:?}");
    assert!(health.detail.unwrap().contains("misses"));
    assert!(
        cache.invalidate_prefix("").await.is_err(),
        "invalidation must not pretend"
    );
    assert!(cache.stats().errors >= 3, "{:?}", cache.stats());

    proxy.restore().await;
    eventually("the cache reconnects", async || {
        cache.get("k").await.unwrap() == Some(Bytes::from("v"))
    })
    .await;
    assert!(!cache.is_degraded());
    assert_eq!(cache.health().await.status, HealthStatus::Ok);
    // The write made during the outage was dropped, not queued.
    assert_eq!(cache.get("k2").await.unwrap(), None);
    cache.invalidate_prefix("").await.unwrap();
    proxy.cut();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_tag_sets_expire_with_their_longest_lived_entry() {
    let Some(url) = redis_or_skip("redis_tag_sets_expire_with_their_longest_lived_entry").await
    else {
        return;
    };
    let prefix = unique_prefix("tagttl");
    let cache = RedisCache::new(url.clone()).with_prefix(prefix.clone());
    cache.connect().await.unwrap();
    let mut conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let tag_ttl = async |conn: &mut redis::aio::MultiplexedConnection| {
        redis::cmd("PTTL")
            .arg(format!("{prefix}t:t"))
            .query_async::<i64>(conn)
            .await
            .unwrap()
    };
    let set = |key: &'static str, ttl: Option<u64>| {
        cache.set(
            key,
            Bytes::from("v"),
            SetOptions {
                ttl: ttl.map(Duration::from_millis),
                tags: vec!["t".to_owned()],
            },
        )
    };
    set("a", Some(5_000)).await.unwrap();
    let first = tag_ttl(&mut conn).await;
    assert!(first > 0 && first <= 5_000, "{first}");
    set("b", Some(1_000)).await.unwrap();
    assert!(
        tag_ttl(&mut conn).await > 1_000,
        "a shorter entry does not shorten it"
    );
    set("c", Some(60_000)).await.unwrap();
    assert!(
        tag_ttl(&mut conn).await > 5_000,
        "a longer entry extends it"
    );
    set("d", None).await.unwrap();
    assert_eq!(
        tag_ttl(&mut conn).await,
        -1,
        "an entry without TTL keeps it"
    );
    assert_eq!(cache.invalidate_tag("t").await.unwrap(), 4);
}
