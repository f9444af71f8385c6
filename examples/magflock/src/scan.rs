//! `magflock sentinel scan`: SQLGuard on the command line, for trying values and replaying
//! captured requests. Only SQLGuard judges today; the other agents come with Sentinel's
//! agent API.

use std::io::{BufRead, Write};

use sentinel::SqlGuard;

use crate::commands::Failure;

/// Headers whose values are protocol data, not user input worth judging.
const SKIPPED_HEADERS: [&str; 8] = [
    "accept",
    "accept-encoding",
    "accept-language",
    "connection",
    "content-length",
    "content-type",
    "host",
    "user-agent",
];

fn line(out: &mut impl Write, confidence: f32, attack: bool) -> std::io::Result<()> {
    if attack {
        writeln!(out, "attack {confidence:.2} SQLGuard")
    } else {
        writeln!(out, "benign {confidence:.2}")
    }
}

/// Every string a request carries that a client controls: query values, header values (but
/// protocol ones), and string leaves of a JSON body.
fn request_values(request: &serde_json::Value) -> Vec<String> {
    let mut values = Vec::new();
    match &request["query"] {
        serde_json::Value::String(q) => values.extend(
            q.split('&')
                .map(|p| p.split_once('=').map_or(p, |(_, v)| v).to_owned()),
        ),
        serde_json::Value::Object(map) => values.extend(map.values().flat_map(strings)),
        _ => {}
    }
    if let Some(path) = request["path"].as_str() {
        values.extend(path.split('/').filter(|s| !s.is_empty()).map(str::to_owned));
    }
    if let Some(headers) = request["headers"].as_object() {
        for (name, value) in headers {
            if !SKIPPED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                values.extend(strings(value));
            }
        }
    }
    values.extend(strings(&request["body"]));
    values
}

fn strings(value: &serde_json::Value) -> Vec<String> {
    match value {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(items) => items.iter().flat_map(strings).collect(),
        serde_json::Value::Object(map) => map.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// Runs the scanner over standard input.
pub fn run(requests: bool) -> Result<(), Failure> {
    let guard = SqlGuard::new();
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (number, input) in stdin.lock().lines().enumerate() {
        let input = input?;
        if requests {
            if input.trim().is_empty() {
                continue;
            }
            let request: serde_json::Value = serde_json::from_str(&input).map_err(|e| {
                Failure::Message(format!("line {}: not a JSON request ({e})", number + 1))
            })?;
            let worst = request_values(&request)
                .iter()
                .flat_map(|v| [Some(v.as_str()), sentinel::postgrest_operand(v)])
                .flatten()
                .map(|v| guard.inspect(v))
                .max_by(|a, b| a.confidence.total_cmp(&b.confidence));
            match worst {
                Some(verdict) => line(&mut out, verdict.confidence, verdict.attack)?,
                None => line(&mut out, 0.0, false)?,
            }
        } else {
            let verdict = guard.inspect(&input);
            line(&mut out, verdict.confidence, verdict.attack)?;
        }
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_values_cover_query_headers_path_and_body() {
        let request = serde_json::json!({
            "method": "POST",
            "path": "/rest/v1/users",
            "query": "select=id&id=eq.1",
            "headers": { "User-Agent": "curl/8", "X-Note": "hi" },
            "body": { "name": "Ada", "tags": ["a", { "deep": "b" }], "age": 36 },
        });
        let mut values = request_values(&request);
        values.sort();
        assert_eq!(
            values,
            ["Ada", "a", "b", "eq.1", "hi", "id", "rest", "users", "v1"]
        );
    }
}
