//! Fetching a JWKS document from an identity provider's URL. The client is built on first use
//! (no I/O before boot) and shared; every fetch is bounded in time and size, because a request
//! whose token names an unknown `kid` waits for it, and an answer is a document of a few keys,
//! never megabytes. Connections are not kept alive: fetches are at most one per refresh
//! interval, and a pool would only keep sockets to an IdP that may since have gone away.

use std::sync::OnceLock;
use std::time::Duration;

use super::JwtError;

/// The largest JWKS document accepted (real ones are a few kilobytes).
const MAX_BODY: usize = 1024 * 1024;

/// A lazily built HTTP client for one verifier's URLs.
#[derive(Default)]
pub(crate) struct JwksClient {
    client: OnceLock<reqwest::Client>,
}

impl JwksClient {
    /// The body of `url` as text, within `timeout` (connection, answer and body together).
    pub(crate) async fn fetch(&self, url: &str, timeout: Duration) -> Result<String, JwtError> {
        let fail = |source: Box<dyn std::error::Error + Send + Sync>| JwtError::Fetch {
            url: url.to_owned(),
            source,
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| fail(Box::new(e)))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(fail("only https:// and http:// URLs are supported".into()));
        }
        let client = self.client(timeout).map_err(|e| fail(Box::new(e)))?;
        let fetch = async {
            let mut response = client
                .get(parsed)
                .header(http::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(|e| fail(Box::new(e)))?;
            let status = response.status();
            if !status.is_success() {
                return Err(fail(format!("the server answered {status}").into()));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| fail(Box::new(e)))? {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(fail(
                        format!("the document is larger than {MAX_BODY} bytes").into(),
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            String::from_utf8(body).map_err(|e| fail(Box::new(e)))
        };
        // The client's own timeout covers each request; this one also bounds the body read.
        tokio::time::timeout(timeout, fetch)
            .await
            .unwrap_or_else(|_| Err(fail(format!("no answer within {timeout:?}").into())))
    }

    fn client(&self, timeout: Duration) -> Result<&reqwest::Client, reqwest::Error> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(0)
            .user_agent(concat!("magmobo-auth/", env!("CARGO_PKG_VERSION")))
            .build()?;
        // A concurrent first fetch may have set it meanwhile; either client is as good.
        Ok(self.client.get_or_init(|| client))
    }
}
