//! Finds the test services through environment variables with local defaults.
//!
//! When a service is unreachable: in CI (`CI=true`) the test fails loudly, because a skipped
//! test proves nothing; on a developer machine it is skipped with a message saying how to
//! start the service (`scripts/test-services.sh` does it).

/// Redis URL from `REDIS_URL`, default `redis://127.0.0.1:6379`.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// True when running in CI, where a missing service is an error.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Returns a Redis URL that answers PING, or `None` (only outside CI) when it does not.
pub async fn redis_or_skip(test: &str) -> Option<String> {
    let url = redis_url();
    let reachable = async {
        let client = redis::Client::open(url.as_str()).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .ok()
    };
    let answered = tokio::time::timeout(std::time::Duration::from_secs(3), reachable).await;
    if matches!(answered, Ok(Some(_))) {
        return Some(url);
    }
    assert!(
        !in_ci(),
        "{test}: Redis is not reachable at {url} (REDIS_URL); CI requires it. Start it with scripts/test-services.sh"
    );
    eprintln!("SKIPPED {test}: Redis not reachable at {url}; run scripts/test-services.sh");
    None
}
