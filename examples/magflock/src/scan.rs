//! `magflock sentinel scan`: Sentinel on the command line, for trying values and replaying
//! captured requests. Values are judged by SQLGuard; with `--requests` each JSON request is
//! judged by every request agent of the board's Sentinel (SQLGuard, APIWatch, AuthSentry),
//! exactly as the CPU guard would, except that rate limits are off (a replay is not traffic).

use std::io::{BufRead, Write};
use std::net::IpAddr;

use magmobo::axum::http;
use sentinel::{
    ApiWatch, ApiWatchConfig, AuthSentry, Sentinel, SentinelConfig, SqlGuard, SqlGuardAgent,
};

use crate::commands::Failure;

/// A finding at or above this confidence makes a request an attack (the policy's log band).
const ATTACK_FROM: f32 = 0.5;

/// The board's agents, rate limits off.
fn request_judge() -> Sentinel {
    Sentinel::new(SentinelConfig::default())
        .agent(SqlGuardAgent::new())
        .agent(ApiWatch::new(ApiWatchConfig {
            per_ip: None,
            per_identity: None,
            ..ApiWatchConfig::default()
        }))
        .agent(AuthSentry::default())
}

/// Percent-encodes everything but unreserved characters and the ones in `keep`.
fn encode(text: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) || keep.contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The request head and body a JSON line describes: `method`, `path`, `query` (a string as
/// sent, or an object of values), `headers` (an object), `body` (any JSON, sent as JSON).
fn request_of(line: &serde_json::Value) -> Result<(http::request::Parts, Option<Vec<u8>>), String> {
    let method = line["method"].as_str().unwrap_or("GET");
    let path = line["path"].as_str().unwrap_or("/");
    let mut uri = encode(path, b"/%:@!$&'()*+,;=");
    match &line["query"] {
        serde_json::Value::String(q) if !q.is_empty() => {
            uri.push('?');
            uri.push_str(&encode(q, b"%&=+,;:@/?!$'()*"));
        }
        serde_json::Value::Object(map) if !map.is_empty() => {
            let pairs: Vec<String> = map
                .iter()
                .map(|(k, v)| {
                    let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                    format!("{}={}", encode(k, b""), encode(&v, b""))
                })
                .collect();
            uri.push('?');
            uri.push_str(&pairs.join("&"));
        }
        _ => {}
    }
    let mut builder = http::Request::builder().method(method).uri(&uri);
    if let Some(headers) = line["headers"].as_object() {
        for (name, value) in headers {
            let value = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_bytes(value.as_bytes()),
            ) {
                builder = builder.header(name, value);
            }
        }
    }
    let body = match &line["body"] {
        serde_json::Value::Null => None,
        body => {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
            Some(serde_json::to_vec(body).map_err(|e| e.to_string())?)
        }
    };
    let request = builder
        .body(())
        .map_err(|e| format!("not a valid request ({e})"))?;
    Ok((request.into_parts().0, body))
}

/// Runs the scanner over standard input.
pub fn run(requests: bool) -> Result<(), Failure> {
    let guard = SqlGuard::new();
    let judge = requests.then(request_judge);
    let peer = IpAddr::from([127, 0, 0, 1]);
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (number, input) in stdin.lock().lines().enumerate() {
        let input = input?;
        let Some(judge) = &judge else {
            let verdict = guard.inspect(&input);
            if verdict.attack {
                writeln!(out, "attack {:.2} SQLGuard", verdict.confidence)?;
            } else {
                writeln!(out, "benign {:.2}", verdict.confidence)?;
            }
            continue;
        };
        if input.trim().is_empty() {
            continue;
        }
        let fail = |why: String| Failure::Message(format!("line {}: {why}", number + 1));
        let line: serde_json::Value =
            serde_json::from_str(&input).map_err(|e| fail(format!("not a JSON request ({e})")))?;
        let (parts, body) = request_of(&line).map_err(fail)?;
        let judgement = judge.engine().judge(&parts, body.as_deref(), peer);
        match judgement.worst() {
            Some(worst) if worst.finding.confidence >= ATTACK_FROM => writeln!(
                out,
                "attack {:.2} {}",
                worst.finding.confidence, worst.finding.agent
            )?,
            Some(worst) => writeln!(out, "benign {:.2}", worst.finding.confidence)?,
            None => writeln!(out, "benign 0.00")?,
        }
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(line: serde_json::Value) -> Option<(&'static str, f32)> {
        let (parts, body) = request_of(&line).unwrap();
        let judgement =
            request_judge()
                .engine()
                .judge(&parts, body.as_deref(), IpAddr::from([127, 0, 0, 1]));
        judgement
            .worst()
            .filter(|w| w.finding.confidence >= ATTACK_FROM)
            .map(|w| (w.finding.agent, w.finding.confidence))
    }

    #[test]
    fn requests_are_judged_by_every_agent_wherever_the_value_is() {
        let attack = "1' OR '1'='1";
        let agent = |line| verdict(line).map(|(a, _)| a);
        let q =
            serde_json::json!({"path": "/rest/v1/users", "query": {"id": format!("eq.{attack}")}});
        assert_eq!(agent(q), Some("SQLGuard"));
        let raw = serde_json::json!({"path": "/rest/v1/users", "query": "id=eq.1%27%20OR%20%271%27%3D%271"});
        assert_eq!(agent(raw), Some("SQLGuard"));
        let h = serde_json::json!({"path": "/x", "headers": {"X-Forwarded-For": attack}});
        assert_eq!(agent(h), Some("SQLGuard"));
        let b = serde_json::json!({"method": "POST", "path": "/x", "body": {"a": [{"b": attack}]}});
        assert_eq!(agent(b), Some("SQLGuard"));
        let ua = serde_json::json!({"path": "/", "headers": {"User-Agent": "sqlmap/1.7"}});
        assert_eq!(agent(ua), Some("APIWatch"));
        let traversal = serde_json::json!({"path": "/files/../../etc/passwd"});
        assert_eq!(agent(traversal), Some("APIWatch"));
        let benign = serde_json::json!({
            "method": "POST", "path": "/rest/v1/notes", "query": {"select": "id,name"},
            "headers": {"User-Agent": "curl/8"}, "body": {"text": "Let's select a table"},
        });
        assert_eq!(verdict(benign), None);
    }
}
