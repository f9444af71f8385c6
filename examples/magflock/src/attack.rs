//! `magflock test`: an attack simulation against a running server, to see the defenses hold.
//!
//! It sends what an attacker would: SQL injection in the query string (plain and encoded),
//! in a JSON body and in a header; a scanner burst (probing paths with a scanner's user
//! agent); a brute force of API keys from one source; a brute force of a password on the
//! accounts API (`/auth/v1`, skipped when the server has none); and a bulk read. Each attack is judged
//! by what came back (403 blocked, 429 throttled, anything else passed) and by what the
//! audit log recorded meanwhile (read from the project's database, as `magflock logs` does):
//! an attack that passed but was recorded was "only logged". The exit status is non-zero
//! when an attack that must be stopped was not.
//!
//! It uses a temporary API key it creates in the project's database and revokes at the end,
//! so it needs no secret on the command line. Against a server on loopback, each attack
//! comes from its own address (127.0.0.10, 127.0.0.11, ...), so an earlier attack's block
//! does not answer for the next one. Note that the threat analyzer may block the
//! simulating address for a while afterwards, as it would block a real attacker.

use std::sync::Arc;
use std::time::Duration;

use magmobo::auth::KeyStore;
use magmobo::prelude::*;
use sentinel::audit::{AuditFilter, AuditStore};

use crate::commands::{Failure, storage};
use crate::settings::Loaded;

/// What an attack must meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A 403 (or 429) for every request of the attack.
    Block,
    /// At least one 403 or 429 before the attack ends.
    Stop,
    /// Reported only: whether it is caught depends on the data (e.g. the table's size).
    Observe,
}

/// What happened to an attack.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    Blocked,
    Throttled,
    Logged,
    Passed,
    Skipped,
}

struct Request {
    method: reqwest::Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

struct Attack {
    name: &'static str,
    expect: Expect,
    requests: Vec<Request>,
    /// Use the simulation's API key (false: the attack brings its own credentials).
    with_key: bool,
}

#[derive(serde::Serialize)]
struct Line {
    attack: &'static str,
    verdict: Verdict,
    held: bool,
    /// Reported only, never a failed defense.
    observed: bool,
    statuses: String,
    detail: String,
}

fn get(path: String) -> Request {
    Request {
        method: reqwest::Method::GET,
        path,
        headers: Vec::new(),
        body: None,
    }
}

fn attacks(prefix: &str, table: &str) -> Vec<Attack> {
    let rest = |q: &str| format!("{prefix}/{table}?{q}");
    let injection_query = [
        "id=eq.1'%20OR%20'1'='1",
        "id=eq.1%27%20OR%20%271%27%3D%271",
        "id=eq.1%2527%2520OR%25201%253D1--",
        "select=*&id=eq.1;DROP%20TABLE%20users--",
        "id=eq.0%20UNION%20SELECT%20password%20FROM%20users--",
    ];
    let scanner_paths = [
        "/.env",
        "/.git/config",
        "/wp-admin/setup-config.php",
        "/phpmyadmin/index.php",
        "/admin/config.json",
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/server-status",
        "/actuator/env",
        "/backup.sql",
    ];
    vec![
        Attack {
            name: "SQL injection in the query string",
            expect: Expect::Block,
            requests: injection_query.iter().map(|q| get(rest(q))).collect(),
            with_key: true,
        },
        Attack {
            name: "SQL injection in a JSON body",
            expect: Expect::Block,
            requests: vec![Request {
                method: reqwest::Method::POST,
                path: format!("{prefix}/{table}"),
                headers: vec![("content-type".into(), "application/json".into())],
                body: Some(r#"{"name":"x' OR '1'='1' --"}"#.into()),
            }],
            with_key: true,
        },
        Attack {
            name: "SQL injection in a header",
            expect: Expect::Block,
            requests: vec![Request {
                method: reqwest::Method::GET,
                path: rest("select=*&limit=1"),
                headers: vec![(
                    "x-search".into(),
                    "1' UNION SELECT username, password FROM users--".into(),
                )],
                body: None,
            }],
            with_key: true,
        },
        Attack {
            name: "scanner burst",
            expect: Expect::Stop,
            requests: scanner_paths
                .iter()
                .map(|p| Request {
                    method: reqwest::Method::GET,
                    path: (*p).to_owned(),
                    headers: vec![(
                        "user-agent".into(),
                        "sqlmap/1.8 (https://sqlmap.org)".into(),
                    )],
                    body: None,
                })
                .collect(),
            with_key: false,
        },
        Attack {
            name: "API key brute force",
            expect: Expect::Stop,
            requests: (0..40)
                .map(|i| Request {
                    method: reqwest::Method::GET,
                    path: rest("limit=1"),
                    headers: vec![("apikey".into(), format!("mf_{i:012x}_guessedsecret{i}"))],
                    body: None,
                })
                .collect(),
            with_key: false,
        },
        Attack {
            name: "sign-in brute force",
            expect: Expect::Stop,
            requests: (0..30)
                .map(|i| Request {
                    method: reqwest::Method::POST,
                    path: "/auth/v1/token?grant_type=password".into(),
                    headers: vec![("content-type".into(), "application/json".into())],
                    body: Some(format!(
                        r#"{{"email":"victim@example.com","password":"guess-{i}"}}"#
                    )),
                })
                .collect(),
            with_key: true,
        },
        Attack {
            name: "bulk read (observed)",
            expect: Expect::Observe,
            // Twenty small reads make the identity's baseline, then whole-table reads with
            // an exact count. DataFlow flags them only on tables of 500+ rows, so on a small
            // table this attack is reported but does not count as a failed defense.
            requests: (0..20)
                .map(|_| get(rest("select=*&limit=1")))
                .chain((0..5).map(|_| Request {
                    method: reqwest::Method::GET,
                    path: rest("select=*"),
                    headers: vec![("prefer".into(), "count=exact".into())],
                    body: None,
                }))
                .collect(),
            with_key: true,
        },
    ]
}

/// Runs `magflock test`.
pub async fn run(
    loaded: &Loaded,
    url: Option<String>,
    table: Option<String>,
    json: bool,
) -> Result<(), Failure> {
    let base = url
        .unwrap_or_else(|| format!("http://{}", loaded.settings.listen))
        .trim_end_matches('/')
        .to_owned();
    let prefix = loaded.settings.rest_prefix.trim_end_matches('/').to_owned();
    let db: Arc<dyn Storage> = Arc::new(storage(loaded)?);
    let keys = KeyStore::new(db.clone());
    keys.install().await?;
    let key = keys.create("magflock-test", "anon", None).await?;
    let outcome = simulate(&base, &prefix, table, &key.full, &db, json).await;
    if let Err(e) = keys.revoke(&key.key.id).await {
        eprintln!(
            "magflock: could not revoke the temporary key {}: {e}",
            key.key.id
        );
    }
    outcome
}

async fn simulate(
    base: &str,
    prefix: &str,
    table: Option<String>,
    key: &str,
    db: &Arc<dyn Storage>,
    json: bool,
) -> Result<(), Failure> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let health = client
        .get(format!("{base}/health"))
        .send()
        .await
        .map_err(|e| {
            Failure::Message(format!(
                "no server answers at {base} ({e}): start it with `magflock start`, or pass --url"
            ))
        })?;
    if !health.status().is_success() && health.status().as_u16() != 503 {
        return Err(Failure::Message(format!(
            "{base}/health answered {}",
            health.status()
        )));
    }
    // The server's API keys are re-read every few seconds; wait until ours is known.
    let table = match table {
        Some(t) => t,
        None => first_table(&client, base, prefix, key).await?,
    };
    let audit = AuditStore::new(db.clone());
    audit.install().await?;
    let mut lines = Vec::new();
    // On loopback every attack comes from its own address (127.0.0.10, .11, ...), so one
    // attack's block does not decide the next one's verdict.
    let loopback = base.contains("://127.0.0.1") || base.contains("://localhost");
    for (n, attack) in attacks(prefix, &table).into_iter().enumerate() {
        let client = if loopback {
            let source = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 10 + n as u8));
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .local_address(source)
                .build()?
        } else {
            client.clone()
        };
        let newest = AuditFilter {
            limit: Some(1),
            ..AuditFilter::default()
        };
        let since = audit.query(&newest).await?.last().map(|e| e.seq);
        let mut statuses = Vec::new();
        let mut detail = String::new();
        for r in &attack.requests {
            let mut req = client.request(r.method.clone(), format!("{base}{}", r.path));
            if attack.with_key {
                req = req.header("apikey", key);
            }
            for (k, v) in &r.headers {
                req = req.header(k, v);
            }
            if let Some(body) = &r.body {
                req = req.body(body.clone());
            }
            match req.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap_or_default();
                    if matches!(status, 403 | 429) && detail.is_empty() {
                        detail = serde_json::from_str::<serde_json::Value>(&text)
                            .ok()
                            .and_then(|j| {
                                j.get("message").and_then(|m| m.as_str()).map(str::to_owned)
                            })
                            .unwrap_or(text);
                    }
                    statuses.push(status);
                }
                Err(e) => {
                    statuses.push(0);
                    detail = e.to_string();
                }
            }
        }
        // The audit log is written through a buffer; give it a moment.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let logged = !audit
            .query(&AuditFilter {
                after_seq: since,
                ..AuditFilter::default()
            })
            .await?
            .is_empty();
        let stopped = statuses.iter().any(|s| matches!(s, 403 | 429));
        let all_stopped = statuses.iter().all(|s| matches!(s, 403 | 429));
        // No accounts API on this server (PostgREST mode): nothing to attack.
        let absent = !statuses.is_empty() && statuses.iter().all(|s| *s == 404);
        let verdict = if absent {
            Verdict::Skipped
        } else if statuses.contains(&403) {
            Verdict::Blocked
        } else if statuses.contains(&429) {
            Verdict::Throttled
        } else if logged {
            Verdict::Logged
        } else {
            Verdict::Passed
        };
        let held = match attack.expect {
            Expect::Block => all_stopped,
            Expect::Stop => stopped,
            Expect::Observe => true,
        };
        lines.push(Line {
            observed: attack.expect == Expect::Observe,
            attack: attack.name,
            verdict,
            held,
            statuses: summarize(&statuses),
            detail,
        });
    }
    report(&lines, json);
    if lines
        .iter()
        .all(|l| l.held || l.verdict == Verdict::Skipped)
    {
        Ok(())
    } else {
        Err(Failure::Message(
            "some defenses did not hold (see above); check that Sentinel is on in this server"
                .into(),
        ))
    }
}

/// The first exposed table, from the OpenAPI document at the API root. The server re-reads
/// API keys every few seconds, so the temporary key is tried after that, a few times, and
/// gently: a burst of 401s would look like a brute force to Sentinel.
async fn first_table(
    client: &reqwest::Client,
    base: &str,
    prefix: &str,
    key: &str,
) -> Result<String, Failure> {
    eprintln!("waiting for the server to load the temporary API key...");
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let response = client
            .get(format!("{base}{prefix}/"))
            .header("apikey", key)
            .send()
            .await?;
        match response.status().as_u16() {
            401 => continue,
            403 | 429 => {
                return Err(Failure::Message(format!(
                    "the server refuses this address ({}): Sentinel blocked it after an earlier attack; wait ten minutes or restart the server",
                    response.status()
                )));
            }
            _ => {}
        }
        let doc: serde_json::Value = response.json().await.unwrap_or_default();
        return doc["paths"]
            .as_object()
            .and_then(|paths| {
                paths
                    .keys()
                    .find(|p| p.len() > 1 && !p.starts_with("/rpc/"))
                    .map(|p| p.trim_start_matches('/').to_owned())
            })
            .ok_or_else(|| {
                Failure::Message(
                    "the API has no table to attack: create one (magflock sql \"create table ...\") or pass --table".into(),
                )
            });
    }
    Err(Failure::Message(
        "the server did not accept the temporary API key: is it serving this project's database?"
            .into(),
    ))
}

fn summarize(statuses: &[u16]) -> String {
    let mut counts: Vec<(u16, usize)> = Vec::new();
    for s in statuses {
        match counts.iter_mut().find(|(k, _)| k == s) {
            Some((_, n)) => *n += 1,
            None => counts.push((*s, 1)),
        }
    }
    counts
        .iter()
        .map(|(s, n)| format!("{n}x{s}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn report(lines: &[Line], json: bool) {
    if json {
        for line in lines {
            say!("{}", serde_json::to_string(line).unwrap_or_default());
        }
        return;
    }
    say!(
        "{:<36} {:<10} {:<6} {:<16} detail",
        "attack",
        "verdict",
        "held",
        "answers"
    );
    for l in lines {
        let verdict = format!("{:?}", l.verdict).to_lowercase();
        let detail: String = l.detail.chars().take(60).collect();
        say!(
            "{:<36} {:<10} {:<6} {:<16} {detail}",
            l.attack,
            verdict,
            match (l.observed, l.held) {
                (true, _) => "-",
                (false, true) => "yes",
                (false, false) => "NO",
            },
            l.statuses
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_summaries_count_each_code() {
        assert_eq!(summarize(&[403, 403, 429, 200]), "2x403 1x429 1x200");
        assert_eq!(summarize(&[]), "");
    }

    #[test]
    fn every_attack_sends_something() {
        for a in attacks("/rest/v1", "items") {
            assert!(!a.requests.is_empty(), "{}", a.name);
        }
    }
}
