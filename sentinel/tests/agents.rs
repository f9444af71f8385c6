//! Data-driven verdicts of the whole agent set: a request in, the deciding agent, threat kind
//! and action out, through one `check` helper. No board: [`Engine::judge`] is what the CPU
//! guard runs.

// Tests unwrap freely: a panic with the value is the clearest failure.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::time::Duration;

use magmobo_core::axum::http;
use sentinel::agent::{Agent, ResponseView};
use sentinel::{
    Action, ApiWatch, ApiWatchConfig, AuthSentry, AuthSentryConfig, Limit, Policy, Sentinel,
    SentinelConfig, ThreatKind,
};

/// A request: method, URI, headers and an optional JSON body.
struct Req {
    method: &'static str,
    uri: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Option<&'static str>,
}

fn get(uri: &'static str) -> Req {
    Req {
        method: "GET",
        uri,
        headers: Vec::new(),
        body: None,
    }
}

fn post(uri: &'static str, body: &'static str) -> Req {
    Req {
        method: "POST",
        uri,
        headers: vec![("content-type", "application/json")],
        body: Some(body),
    }
}

impl Req {
    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }
    fn parts(&self) -> http::request::Parts {
        let mut builder = http::Request::builder().method(self.method).uri(self.uri);
        for (k, v) in &self.headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).unwrap().into_parts().0
    }
}

fn peer() -> IpAddr {
    IpAddr::from([203, 0, 113, 7])
}

/// The worst finding's agent, kind and action, or `None` when nothing was found at log level.
#[track_caller]
fn check(sentinel: &Sentinel, request: Req, expected: Option<(&str, ThreatKind, Action)>) {
    let parts = request.parts();
    let judgement = sentinel
        .engine()
        .judge(&parts, request.body.map(str::as_bytes), peer());
    let got = judgement
        .worst()
        .filter(|j| j.action >= Action::Log)
        .map(|j| (j.finding.agent, j.finding.kind, j.action));
    assert_eq!(
        got, expected,
        "{} {}: {:#?}",
        request.method, request.uri, judgement.findings
    );
}

fn standard() -> Sentinel {
    Sentinel::default()
}

const SQL: Option<(&str, ThreatKind, Action)> =
    Some(("SQLGuard", ThreatKind::SqlInjection, Action::Escalate));

#[test]
fn the_vision_check_is_blocked_wherever_the_payload_travels() {
    let s = standard();
    check(&s, get("/rest/v1/users?id=eq.1'%20OR%20'1'='1"), SQL);
    check(
        &s,
        get("/rest/v1/users?id=eq.1%27%20OR%20%271%27%3D%271"),
        SQL,
    );
    check(
        &s,
        get("/rest/v1/users?id=eq.1%2527%2520OR%2520%25271%2527%253D%25271"),
        SQL,
    );
    check(&s, get("/rest/v1/users?id=eq.1'+OR+'1'='1"), SQL);
    check(&s, post("/rest/v1/users", r#"{"id":"1' OR '1'='1"}"#), SQL);
    check(
        &s,
        post(
            "/rest/v1/users",
            r#"{"user":{"tags":["ok","1' OR '1'='1"]}}"#,
        ),
        SQL,
    );
    check(
        &s,
        get("/rest/v1/users").header("x-forwarded-for", "1' OR '1'='1"),
        SQL,
    );
    check(
        &s,
        get("/rest/v1/users").header("x-customer", "1%27%20OR%20%271%27%3D%271"),
        SQL,
    );
    let form = Req {
        headers: vec![("content-type", "application/x-www-form-urlencoded")],
        ..post("/rpc/login", "user=1%27+OR+%271%27%3D%271&pass=x")
    };
    check(&s, form, SQL);
}

#[test]
fn ordinary_api_traffic_passes() {
    let s = standard();
    check(
        &s,
        get("/rest/v1/users?select=id,name&name=eq.O'Brien&order=name.asc&limit=10"),
        None,
    );
    check(
        &s,
        get("/rest/v1/posts?title=ilike.*select*&or=(a.eq.1,b.eq.2)"),
        None,
    );
    check(
        &s,
        post(
            "/rest/v1/reviews",
            r#"{"text":"I'd select this again; union rules! -- Ann","stars":5,"tags":["it's"]}"#,
        )
        .header("x-request-id", "5f0c-11ee")
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
        )
        .header("authorization", "Bearer mf_ab12_' OR '1'='1"),
        None,
    );
    check(&s, get("/rest/v1/files?path=eq.docs/a..b/c"), None);
}

#[test]
fn scanners_traversal_and_probes() {
    let s = standard();
    check(
        &s,
        get("/rest/v1/users").header("user-agent", "sqlmap/1.8#stable (https://sqlmap.org)"),
        Some(("APIWatch", ThreatKind::ScannerSignature, Action::Block)),
    );
    check(
        &s,
        get("/").header(
            "user-agent",
            "Mozilla/5.0 (compatible; Nuclei - Open-source project)",
        ),
        Some(("APIWatch", ThreatKind::ScannerSignature, Action::Block)),
    );
    let traversal = Some(("APIWatch", ThreatKind::PathTraversal, Action::Block));
    check(&s, get("/static/..%2f..%2fetc%2fpasswd"), traversal);
    check(&s, get("/static/%252e%252e%252fsecret"), traversal);
    check(&s, get("/download?file=../../etc/passwd"), traversal);
    check(
        &s,
        get("/.env"),
        Some(("APIWatch", ThreatKind::AdminProbe, Action::Alert)),
    );
    check(
        &s,
        get("/wp-admin/setup.php"),
        Some(("APIWatch", ThreatKind::AdminProbe, Action::Alert)),
    );
    check(
        &s,
        get("/.git/config"),
        Some(("APIWatch", ThreatKind::AdminProbe, Action::Block)),
    );
}

#[test]
fn dry_run_and_per_route_bands_change_the_action_not_the_finding() {
    let dry = Sentinel::standard(SentinelConfig {
        policy: Policy::new().dry_run(true),
        ..Default::default()
    });
    check(
        &dry,
        get("/rest/v1/users?id=eq.1'%20OR%20'1'='1"),
        Some(("SQLGuard", ThreatKind::SqlInjection, Action::Log)),
    );
    let lenient = Sentinel::standard(SentinelConfig {
        policy: Policy::new().for_agent_on_route(
            "SQLGuard",
            "/rest/v1/sql-playground",
            sentinel::Bands::log_only(0.5),
        ),
        ..Default::default()
    });
    check(
        &lenient,
        get("/rest/v1/sql-playground?q=1'%20OR%20'1'='1"),
        Some(("SQLGuard", ThreatKind::SqlInjection, Action::Log)),
    );
    check(&lenient, get("/rest/v1/users?q=1'%20OR%20'1'='1"), SQL);
}

#[test]
fn rate_limits_answer_with_a_delay_per_ip_and_per_identity() {
    let watch = ApiWatch::new(ApiWatchConfig {
        per_ip: Some(Limit::new(0.001, 4.0)),
        per_identity: Some(Limit::new(0.001, 2.0)),
        ..Default::default()
    });
    let s = Sentinel::new(SentinelConfig::default()).agent(watch);
    let judge = |req: Req| {
        let parts = req.parts();
        s.engine().judge(&parts, None, peer())
    };
    let keyed = || get("/rest/v1/x").header("apikey", "mf_k1_secret");
    assert!(judge(keyed()).retry_after().is_none());
    assert!(judge(keyed()).retry_after().is_none());
    let refused = judge(keyed());
    let wait = refused.retry_after().expect("identity over its burst");
    assert!(wait > Duration::from_secs(60), "{wait:?}");
    let first = refused.worst().unwrap();
    assert_eq!(
        (first.finding.kind, first.action),
        (ThreatKind::RateLimit, Action::Log)
    );
    assert!(
        first.finding.evidence.contains("id:k1"),
        "{}",
        first.finding.evidence
    );
    assert_eq!(
        judge(keyed()).worst().unwrap().action,
        Action::Ignore,
        "only the first refusal of a streak is an event"
    );
    // The address's own bucket (4) was spent by the keyed requests above, so an anonymous
    // request from it is refused too.
    assert!(judge(get("/rest/v1/x")).retry_after().is_some());
}

fn respond(
    agent: &dyn Agent,
    status: u16,
    identity_header: Option<&'static str>,
    from: IpAddr,
) -> Vec<sentinel::Finding> {
    let mut req = get("/rest/v1/x");
    if let Some(key) = identity_header {
        req = req.header("apikey", key);
    }
    let parts = req.parts();
    let response = http::Response::builder()
        .status(status)
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let view = ResponseView::new("GET", "/rest/v1/x", &parts.headers, &response, from);
    let mut findings = Vec::new();
    agent.on_response(&view, &mut findings);
    findings
}

#[test]
fn a_burst_of_not_found_flags_the_source_for_its_next_requests() {
    let watch = ApiWatch::new(ApiWatchConfig {
        not_found_burst: 5,
        ..Default::default()
    });
    let mut reported = Vec::new();
    for _ in 0..5 {
        reported.extend(respond(&watch, 404, None, peer()));
    }
    assert_eq!(reported.len(), 1, "reported once: {reported:?}");
    assert_eq!(reported[0].kind, ThreatKind::NotFoundBurst);
    let s = Sentinel::new(SentinelConfig::default()).agent(watch);
    check(
        &s,
        get("/rest/v1/anything"),
        Some(("APIWatch", ThreatKind::NotFoundBurst, Action::Alert)),
    );
}

#[test]
fn many_identities_failing_from_one_source_is_credential_stuffing() {
    let watch = ApiWatch::default();
    let keys = ["mf_a_x", "mf_b_x", "mf_c_x", "mf_d_x", "mf_e_x"];
    let mut reported = Vec::new();
    for key in keys {
        reported.extend(respond(&watch, 401, Some(key), peer()));
    }
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert_eq!(reported[0].kind, ThreatKind::CredentialStuffing);
    let other = IpAddr::from([198, 51, 100, 1]);
    assert!(respond(&watch, 401, Some("mf_z_x"), other).is_empty());
    let s = Sentinel::new(SentinelConfig::default()).agent(watch);
    check(
        &s,
        get("/rest/v1/x"),
        Some(("APIWatch", ThreatKind::CredentialStuffing, Action::Block)),
    );
}

#[test]
fn auth_failures_delay_then_block_and_a_late_success_is_flagged() {
    let sentry = AuthSentry::new(AuthSentryConfig {
        delay_after: 3,
        block_after: 5,
        base_delay: Duration::from_secs(30),
        takeover_after: 3,
        ..Default::default()
    });
    let key = "mf_victim_wrong";
    let mut reported = Vec::new();
    for _ in 0..3 {
        reported.extend(respond(&sentry, 401, Some(key), peer()));
    }
    assert_eq!(
        reported.len(),
        2,
        "source and identity reach the delay: {reported:?}"
    );
    let s = Sentinel::new(SentinelConfig::default()).agent(sentry);
    let attempt = || get("/rest/v1/x").header("apikey", "mf_victim_guess");
    let parts = attempt().parts();
    let judged = s.engine().judge(&parts, None, peer());
    assert!(
        judged
            .retry_after()
            .is_some_and(|d| d > Duration::from_secs(20)),
        "{judged:?}"
    );
    // An anonymous request from the same source is not held back.
    assert!(
        s.engine()
            .judge(&get("/rest/v1/x").parts(), None, peer())
            .findings
            .is_empty()
    );

    let sentry = AuthSentry::new(AuthSentryConfig {
        delay_after: 100,
        block_after: 5,
        takeover_after: 3,
        ..Default::default()
    });
    for _ in 0..5 {
        respond(&sentry, 401, Some(key), peer());
    }
    let s = Sentinel::new(SentinelConfig::default()).agent(sentry);
    check(
        &s,
        attempt(),
        Some(("AuthSentry", ThreatKind::BruteForce, Action::Block)),
    );

    let sentry = AuthSentry::new(AuthSentryConfig {
        delay_after: 100,
        takeover_after: 3,
        ..Default::default()
    });
    for _ in 0..3 {
        respond(
            &sentry,
            401,
            Some("mf_victim_a"),
            IpAddr::from([10, 9, 9, 9]),
        );
    }
    let success = respond(
        &sentry,
        200,
        Some("mf_victim_right"),
        IpAddr::from([10, 9, 9, 9]),
    );
    assert_eq!(success.len(), 1, "{success:?}");
    assert_eq!(success[0].kind, ThreatKind::AccountTakeover);
    assert!(success[0].evidence.contains("victim") && !success[0].evidence.contains("right"));
}

fn served(agent: &dyn Agent, range: &str, bytes: u64) -> Vec<sentinel::Finding> {
    let parts = get("/rest/v1/orders")
        .header("apikey", "mf_reader_x")
        .parts();
    let response = http::Response::builder()
        .status(200)
        .header("content-range", range)
        .header("content-length", bytes)
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let view = ResponseView::new("GET", "/rest/v1/orders", &parts.headers, &response, peer());
    let mut findings = Vec::new();
    agent.on_response(&view, &mut findings);
    findings
}

#[test]
fn dataflow_flags_reads_far_above_the_identitys_own_baseline() {
    let flow = sentinel::DataFlow::default();
    // A new identity has no baseline: even a big first read is not judged.
    assert!(served(&flow, "0-999/1000", 90_000).is_empty());
    let flow = sentinel::DataFlow::default();
    for i in 0..30 {
        let rows = 3 + i % 3;
        assert!(served(&flow, &format!("0-{}/*", rows - 1), 400 + 20 * rows).is_empty());
    }
    let spike = served(&flow, "0-4999/5000", 600_000);
    assert_eq!(spike.len(), 1, "{spike:?}");
    assert_eq!(spike[0].kind, ThreatKind::Exfiltration);
    assert_eq!(spike[0].identity.as_deref(), Some("reader"));
    assert!(
        spike[0].evidence.contains("5000 rows"),
        "{}",
        spike[0].evidence
    );
}

#[test]
fn sign_in_events_feed_authsentry_and_apiwatch() {
    use magmobo_core::bus::Event;
    let event =
        |topic: &str, payload: serde_json::Value| Event::new(topic, "magauth", "i1", payload);
    let sentry = AuthSentry::new(AuthSentryConfig {
        takeover_after: 3,
        ..Default::default()
    });
    let watch = ApiWatch::default();
    let mut findings = Vec::new();
    for n in 0..5 {
        let failed = event(
            "auth.login.failed",
            serde_json::json!({ "email_hash": format!("h{n}"), "reason": "wrong_password", "ip": "198.51.100.9" }),
        );
        sentry.on_event(&failed, &mut findings);
        watch.on_event(&failed, &mut findings);
    }
    assert!(
        findings
            .iter()
            .any(|f| f.kind == ThreatKind::CredentialStuffing
                && f.source.as_deref() == Some("198.51.100.9")),
        "{findings:?}"
    );
    findings.clear();
    let success = event(
        "auth.login.succeeded",
        serde_json::json!({ "user_id": "u-1", "ip": "198.51.100.9", "method": "password" }),
    );
    sentry.on_event(&success, &mut findings);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].kind, ThreatKind::AccountTakeover);
}
