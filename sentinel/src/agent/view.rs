//! The request and response views agents read: borrowed from the CPU's request head where
//! possible, so building one costs a few small allocations at most.

use std::net::IpAddr;

use magmobo_core::axum::http::{self, HeaderMap};
use sha2::{Digest, Sha256};

/// At most this many body values are inspected; a body with more is judged on the first ones.
pub const MAX_BODY_VALUES: usize = 512;

/// What an agent sees of a request.
#[derive(Debug)]
pub struct RequestView<'a> {
    /// `GET`, `POST`...
    pub method: &'a str,
    /// The path as sent (percent-encoded).
    pub path: &'a str,
    /// Query pairs as sent (percent-encoded; SQLGuard decodes what it inspects).
    pub query: Vec<(&'a str, &'a str)>,
    /// All request headers.
    pub headers: &'a HeaderMap,
    /// String leaves (and object keys) of a JSON body, or pairs of a form body, as
    /// `(field path, value)`; empty when there is no body or it was not read.
    pub body: Vec<(String, String)>,
    /// The caller's identity when a credential names one: the id of an `mf_<id>_<secret>` API
    /// key, or `tok:` and a hash prefix of any other bearer token. Never the secret.
    pub identity: Option<String>,
    /// The client's address.
    pub peer: IpAddr,
    /// Whether the policy throttles this source right now.
    pub throttled: bool,
}

impl<'a> RequestView<'a> {
    /// The view of a request head, with its body when it was read.
    pub fn new(parts: &'a http::request::Parts, peer: IpAddr, body: Option<&[u8]>) -> Self {
        let query = parts
            .uri
            .query()
            .map(|q| {
                q.split('&')
                    .filter(|p| !p.is_empty())
                    .map(|p| p.split_once('=').unwrap_or((p, "")))
                    .collect()
            })
            .unwrap_or_default();
        let body = match body {
            Some(bytes) if !bytes.is_empty() => body_values(&parts.headers, bytes),
            _ => Vec::new(),
        };
        RequestView {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query,
            headers: &parts.headers,
            body,
            identity: identity_of(&parts.headers),
            peer,
            throttled: false,
        }
    }

    /// A header's value, when present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Whether a body with these headers is one agents can read (JSON or a form).
pub fn readable_body(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            let t = t.to_ascii_lowercase();
            t.contains("json") || t.starts_with("application/x-www-form-urlencoded")
        })
}

fn body_values(headers: &HeaderMap, bytes: &[u8]) -> Vec<(String, String)> {
    let form = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if form {
        return String::from_utf8_lossy(bytes)
            .split('&')
            .filter(|p| !p.is_empty())
            .take(MAX_BODY_VALUES)
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect();
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    flatten(&value, &mut String::new(), &mut out);
    out
}

fn flatten(value: &serde_json::Value, path: &mut String, out: &mut Vec<(String, String)>) {
    if out.len() >= MAX_BODY_VALUES {
        return;
    }
    match value {
        serde_json::Value::String(s) => out.push((path.clone(), s.clone())),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                flatten(item, path, out);
                path.truncate(len);
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                // Keys are user input too (MagGate takes them as column names).
                if out.len() < MAX_BODY_VALUES {
                    out.push((format!("{path} (key)"), key.clone()));
                }
                flatten(item, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// The identity a request's credential names, never its secret: the id of an
/// `mf_<id>_<secret>` API key (`Authorization: Bearer`, else `apikey`), or `tok:` plus the
/// first 12 hex digits of the SHA-256 of any other bearer token.
pub fn identity_of(headers: &HeaderMap) -> Option<String> {
    // The bearer value first: with Supabase clients `apikey` is the project's shared key and
    // `Authorization` carries the user's token.
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| {
            let (scheme, token) = auth.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let token = bearer.or_else(|| {
        headers
            .get("apikey")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    })?;
    if token.is_empty() {
        return None;
    }
    if let Some(rest) = token.strip_prefix("mf_")
        && let Some((id, _secret)) = rest.split_once('_')
    {
        return Some(id.to_owned());
    }
    let digest = Sha256::digest(token.as_bytes());
    let mut id = String::with_capacity(16);
    id.push_str("tok:");
    for byte in &digest[..6] {
        id.push_str(&format!("{byte:02x}"));
    }
    Some(id)
}

/// What an agent sees of a finished request.
#[derive(Debug)]
pub struct ResponseView<'a> {
    /// The request's method.
    pub method: &'a str,
    /// The request's path.
    pub path: &'a str,
    /// The request's headers.
    pub request_headers: &'a HeaderMap,
    /// The status answered.
    pub status: u16,
    /// The caller's identity (see [`RequestView::identity`]).
    pub identity: Option<String>,
    /// The client's address.
    pub peer: IpAddr,
    /// Body bytes, from `Content-Length` when the handler set it.
    pub bytes: Option<u64>,
    /// Rows returned, from a PostgREST `Content-Range` (`0-24/*` is 25 rows).
    pub rows: Option<u64>,
    /// Rows in the whole result, when the `Content-Range` says (`0-24/100` is 100).
    pub total: Option<u64>,
}

impl<'a> ResponseView<'a> {
    /// The view of a response to a request.
    pub fn new(
        method: &'a str,
        path: &'a str,
        request_headers: &'a HeaderMap,
        response: &http::response::Parts,
        peer: IpAddr,
    ) -> Self {
        let header = |name: http::header::HeaderName| {
            response
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let bytes = header(http::header::CONTENT_LENGTH).and_then(|v| v.parse().ok());
        let range = header(http::header::CONTENT_RANGE);
        let rows = range.as_deref().and_then(rows_in_range);
        let total = range
            .as_deref()
            .and_then(|v| v.rsplit_once('/'))
            .and_then(|(_, total)| total.trim().parse().ok());
        ResponseView {
            method,
            path,
            request_headers,
            status: response.status.as_u16(),
            identity: identity_of(request_headers),
            peer,
            bytes,
            rows,
            total,
        }
    }
}

/// Rows in a PostgREST `Content-Range` value: `0-24/100` → 25, `*/0` → 0.
pub fn rows_in_range(value: &str) -> Option<u64> {
    let range = value.split('/').next()?.trim();
    if range == "*" {
        return Some(0);
    }
    let (first, last) = range.split_once('-')?;
    let first: u64 = first.trim().parse().ok()?;
    let last: u64 = last.trim().parse().ok()?;
    last.checked_sub(first).map(|n| n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut builder = http::Request::builder().method("POST").uri(uri);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_view_carries_query_pairs_body_values_and_identity_without_secrets() {
        let p = parts(
            "/rest/v1/users?select=id&id=eq.1&flag",
            &[
                ("apikey", "mf_ab12_secretsecret"),
                ("content-type", "application/json"),
            ],
        );
        let body = br#"{"name":"Ada","tags":["x",{"deep":"y"}],"age":3}"#;
        let view = RequestView::new(&p, IpAddr::from([10, 0, 0, 1]), Some(body));
        assert_eq!(view.query, [("select", "id"), ("id", "eq.1"), ("flag", "")]);
        let mut values: Vec<&str> = view.body.iter().map(|(_, v)| v.as_str()).collect();
        values.sort_unstable();
        assert_eq!(values, ["Ada", "age", "deep", "name", "tags", "x", "y"]);
        assert!(view.body.contains(&("tags[1].deep".into(), "y".into())));
        assert_eq!(view.identity.as_deref(), Some("ab12"));
        let bearer = parts("/", &[("authorization", "Bearer eyJhbGciOi.x.y")]);
        let id = identity_of(&bearer.headers).unwrap();
        assert!(id.starts_with("tok:") && !id.contains("eyJ"), "{id}");
    }

    #[test]
    fn content_ranges_count_rows() {
        assert_eq!(rows_in_range("0-24/100"), Some(25));
        assert_eq!(rows_in_range("0-0/*"), Some(1));
        assert_eq!(rows_in_range("*/0"), Some(0));
        assert_eq!(rows_in_range("junk"), None);
    }
}
