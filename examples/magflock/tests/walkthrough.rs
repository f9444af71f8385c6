//! The quick-start walkthrough (docs/quickstart.md) run against the built binary, as a user
//! would type it: init, create a table with `magflock sql`, start, read rows with a key, be
//! refused without one, and see an injection blocked by SQLGuard. On SQLite, PostgreSQL and
//! MariaDB.

// Tests unwrap freely: a panic with the value is the clearest failure.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use magmobo_integration_tests::services::{mysql_or_skip, postgres_or_skip};

fn magflock(project: &Path, database_url: Option<&str>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_magflock"));
    command
        .arg("--project")
        .arg(project)
        .env_remove("MAGFLOCK_DATABASE_URL");
    if let Some(url) = database_url {
        command.env("MAGFLOCK_DATABASE_URL", url);
    }
    command
}

fn run_ok(command: &mut Command) -> String {
    let output = command.output().expect("run magflock");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

struct Server {
    child: Child,
    base: String,
    screen: String,
}

impl Server {
    fn start(project: &Path, database_url: Option<&str>) -> Server {
        Server::start_with(project, database_url, &[])
    }

    fn start_with(project: &Path, database_url: Option<&str>, extra: &[&str]) -> Server {
        let mut child = magflock(project, database_url)
            .args(["start", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start magflock");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            // Read to the end even after the test stopped listening: a closed pipe would
            // make the server's next line (e.g. its shutdown report) fail.
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                let _ = tx.send(line);
            }
        });
        let mut screen = Vec::new();
        let base = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| {
                    panic!(
                        "no 'Listening on' line; screen so far:\n{}",
                        screen.join("\n")
                    )
                });
            screen.push(line.clone());
            if let Some(at) = line.find("Listening on ") {
                break line[at + "Listening on ".len()..].trim().to_owned();
            }
        };
        Server {
            child,
            base,
            screen: screen.join("\n"),
        }
    }

    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .expect("kill")
                .success()
        );
        let status = self.child.wait().expect("wait");
        assert!(
            status.success(),
            "magflock exited with {status} after SIGTERM"
        );
    }
}

fn temp_project() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("magflock-walk-{}-{nanos}", std::process::id()))
}

async fn walkthrough(database_url: Option<&str>) {
    let project = temp_project();
    let init: serde_json::Value = serde_json::from_str(&run_ok(
        magflock(Path::new("."), database_url)
            .arg("init")
            .arg(&project)
            .arg("--json"),
    ))
    .expect("init --json prints one JSON object");
    let anon = init["anon_key"].as_str().expect("anon_key").to_owned();
    assert!(
        init["service_role_key"]
            .as_str()
            .is_some_and(|k| k.starts_with("mf_"))
    );
    assert!(project.join("magflock.toml").exists());

    let out = run_ok(magflock(&project, database_url).args([
        "sql",
        "create table users (id integer primary key, name text not null); \
         insert into users (id, name) values (1, 'Ada'), (2, 'Grace')",
    ]));
    assert!(out.contains("OK (2 rows affected)"), "{out}");

    let server = Server::start(&project, database_url);
    for expected in [
        "✓ Storage detected",
        "✓ PSU detected: APIKeyAuth",
        "MagGate API Generator",
        "✓ SQLGuard",
    ] {
        assert!(
            server.screen.contains(expected),
            "missing {expected:?} in:\n{}",
            server.screen
        );
    }
    let client = reqwest::Client::new();
    let rows: serde_json::Value = client
        .get(format!("{}/rest/v1/users?id=eq.1", server.base))
        .header("apikey", &anon)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rows, serde_json::json!([{ "id": 1, "name": "Ada" }]));

    let keyless = client
        .get(format!("{}/rest/v1/users", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        keyless.status(),
        401,
        "a request without an API key must be refused"
    );

    // Prometheus metrics saw the read and the refusal (asked before the attack below, which
    // gets this address blocked, /metrics included).
    let metrics = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    for expected in [
        r#"magmobo_http_requests_total{method="GET",route="/rest/v1/users",status="200"} 1"#,
        r#"magmobo_http_requests_total{method="GET",route="/rest/v1/users",status="401"} 1"#,
        "magmobo_http_request_duration_seconds_bucket",
        "magmobo_storage_pool_max",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let attack = client
        .get(format!("{}/rest/v1/users?id=eq.1' OR '1'='1", server.base))
        .header("apikey", &anon)
        .send()
        .await
        .unwrap();
    assert_eq!(attack.status(), 403);
    let body: serde_json::Value = attack.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("SQLGuard"),
        "{body}"
    );
    server.stop();
    let _ = std::fs::remove_dir_all(&project);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walkthrough_on_sqlite() {
    walkthrough(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walkthrough_on_postgres() {
    let Some(db) = postgres_or_skip("walkthrough_on_postgres").await else {
        return;
    };
    walkthrough(Some(&db.url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walkthrough_on_mariadb() {
    let Some(db) = mysql_or_skip("walkthrough_on_mariadb").await else {
        return;
    };
    walkthrough(Some(&db.url)).await;
}

#[test]
fn sentinel_scan_prints_one_verdict_per_input_line() {
    use std::io::Write;
    let scan = |args: &[&str], input: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_magflock"))
            .args(["sentinel", "scan"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run scan");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write");
        let output = child.wait_with_output().expect("wait");
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let values = scan(
        &[],
        "1' OR '1'='1\nO'Brien\n1 UNION SELECT password FROM users--\nselect a product\n",
    );
    assert_eq!(values.len(), 4);
    assert!(
        values[0].starts_with("attack ") && values[0].ends_with(" SQLGuard"),
        "{values:?}"
    );
    assert!(values[1].starts_with("benign "), "{values:?}");
    assert!(values[2].starts_with("attack "), "{values:?}");
    assert!(values[3].starts_with("benign "), "{values:?}");
    let requests = scan(
        &["--requests"],
        concat!(
            r#"{"method":"GET","path":"/rest/v1/users","query":{"id":"eq.1 union select password from users"}}"#,
            "\n",
            r#"{"method":"POST","path":"/rest/v1/notes","body":{"text":"Let's select a table for dinner"}}"#,
            "\n",
            r#"{"method":"POST","path":"/rest/v1/notes","headers":{"X-Filter":"x'; DROP TABLE notes;--"}}"#,
            "\n"
        ),
    );
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(requests[0].starts_with("attack "), "{requests:?}");
    assert!(requests[1].starts_with("benign "), "{requests:?}");
    assert!(requests[2].starts_with("attack "), "{requests:?}");
}

/// Polls `url` with `key` until it stops answering 401 (the server re-reads keys every few
/// seconds), then returns the answer.
async fn once_key_known(
    client: &reqwest::Client,
    request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
) -> reqwest::Response {
    for _ in 0..40 {
        let response = request(client).send().await.unwrap();
        if response.status() != 401 {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the key was never accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_and_the_attack_simulation_through_the_cli() {
    let project = temp_project();
    run_ok(
        magflock(Path::new("."), None)
            .arg("init")
            .arg(&project)
            .arg("--json"),
    );
    run_ok(magflock(&project, None).args([
        "sql",
        "create table notes (id integer primary key, body text); \
         create table payroll (id integer primary key, amount integer); \
         insert into notes (id, body) values (1, 'a'), (2, 'b')",
    ]));
    // A grant naming a table that does not exist is refused with the closest name.
    let typo = magflock(&project, None)
        .args([
            "agents",
            "create",
            "--name",
            "typo",
            "--grant",
            "note:select",
        ])
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&typo.stderr).into_owned() + &String::from_utf8_lossy(&typo.stdout);
    assert!(!typo.status.success() && said.contains("notes"), "{said}");
    let created: serde_json::Value =
        serde_json::from_str(&run_ok(magflock(&project, None).args([
            "agents",
            "create",
            "--name",
            "tidy",
            "--grant",
            "notes:select,delete",
            "--approve",
            "delete",
            "--json",
        ])))
        .unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let server = Server::start(&project, None);
    let client = reqwest::Client::new();
    let base = server.base.clone();

    // Granted table: rows; the ungranted one: 403 naming it.
    let read = once_key_known(&client, |c| {
        c.get(format!("{base}/rest/v1/notes?select=id&order=id"))
            .header("apikey", &key)
    })
    .await;
    assert_eq!(read.status(), 200);
    assert_eq!(
        read.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!([{"id":1},{"id":2}])
    );
    let refused = client
        .get(format!("{base}/rest/v1/payroll"))
        .header("apikey", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("payroll"),
        "{body}"
    );

    // A DELETE waits for a human: 202 with a ticket, approved through the CLI, run on poll.
    let parked = client
        .delete(format!("{base}/rest/v1/notes?id=eq.1"))
        .header("apikey", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(parked.status(), 202);
    let ticket: serde_json::Value = parked.json().await.unwrap();
    let id = ticket["ticket"].as_str().unwrap().to_owned();
    let listed =
        run_ok(magflock(&project, None).args(["agents", "tickets", "--status", "pending"]));
    assert!(listed.contains(&id), "{listed}");
    run_ok(magflock(&project, None).args(["agents", "approve", &id, "--by", "test"]));
    let poll = ticket["poll"].as_str().unwrap().to_owned();
    let poll_url = if poll.starts_with("http") {
        poll
    } else {
        format!("{base}{poll}")
    };
    let status = client
        .get(&poll_url)
        .header("apikey", &key)
        .send()
        .await
        .unwrap();
    let status: serde_json::Value = status.json().await.unwrap();
    assert_eq!(status["status"], "executed", "{status}");
    let rows: serde_json::Value = client
        .get(format!("{base}/rest/v1/notes?select=id"))
        .header("apikey", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rows, serde_json::json!([{"id":2}]));

    // The attack simulation: every defense holds (last: it gets this address blocked).
    let output = magflock(&project, None)
        .args(["test", "--url", &base, "--table", "notes"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for attack in [
        "SQL injection in the query string",
        "SQL injection in a JSON body",
        "scanner burst",
    ] {
        assert!(report.contains(attack), "{report}");
    }
    assert!(!report.contains(" NO "), "{report}");
    server.stop();
    let _ = std::fs::remove_dir_all(&project);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgrest_config_runs_magflock_as_postgrest() {
    let Some(db) = postgres_or_skip("a_postgrest_config_runs_magflock_as_postgrest").await else {
        return;
    };
    let role = format!("mf_web_anon_{}", std::process::id());
    let setup = format!(
        "CREATE ROLE {role} NOLOGIN; \
         create table todos (id integer primary key, task text); \
         create table secrets (id integer primary key); \
         insert into todos values (1, 'write tests'); \
         GRANT USAGE ON SCHEMA public TO {role}; GRANT SELECT ON todos TO {role}"
    );
    let project = temp_project();
    std::fs::create_dir_all(&project).unwrap();
    run_ok(magflock(&project, Some(&db.url)).args(["sql", &setup]));
    let conf = project.join("postgrest.conf");
    std::fs::write(
        &conf,
        format!(
            "# as PostgREST reads it\ndb-uri = \"{}\"\ndb-schemas = \"public\"\ndb-anon-role = \"{role}\"\ndb-max-rows = 100\n",
            db.url
        ),
    )
    .unwrap();
    let server = Server::start_with(
        &project,
        None,
        &["--postgrest-config", conf.to_str().unwrap()],
    );
    let client = reqwest::Client::new();
    // PostgREST's paths (the API at `/`), no key needed: the anonymous role reads todos...
    let rows: serde_json::Value = client
        .get(format!("{}/todos", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rows, serde_json::json!([{"id":1,"task":"write tests"}]));
    // ...and the database refuses what the role was not granted: 401 for the anonymous role.
    let refused = client
        .get(format!("{}/secrets", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    server.stop();
    let cleanup = format!("DROP TABLE todos, secrets; DROP OWNED BY {role}; DROP ROLE {role}");
    run_ok(magflock(&project, Some(&db.url)).args(["sql", &cleanup]));
    let _ = std::fs::remove_dir_all(&project);
}

/// Mail settings are checked before the server starts: confirmation without an SMTP server,
/// or a URL that is not SMTP, stop `start` with a message saying what to set; `config`
/// never prints the SMTP password.
#[test]
fn mail_settings_are_checked_at_start_and_masked() {
    let project = temp_project();
    std::fs::create_dir_all(&project).unwrap();
    let start = |vars: &[(&str, &str)]| {
        let output = magflock(&project, None)
            .args(["start", "--listen", "127.0.0.1:0"])
            .envs(vars.iter().copied())
            .output()
            .expect("run magflock");
        assert!(!output.status.success(), "start should refuse {vars:?}");
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    let said = start(&[("MAGFLOCK_CONFIRM_EMAIL", "true")]);
    assert!(said.contains("smtp_url"), "{said}");
    let said = start(&[("MAGFLOCK_SMTP_URL", "http://user:hunter2@mail.example")]);
    assert!(
        said.contains("not an SMTP URL") && !said.contains("hunter2"),
        "{said}"
    );
    let shown = run_ok(
        magflock(&project, None)
            .args(["config", "--json"])
            .env("MAGFLOCK_SMTP_URL", "smtp://user:hunter2@mail.example:587"),
    );
    assert!(
        shown.contains("smtp://user:***@mail.example:587") && !shown.contains("hunter2"),
        "{shown}"
    );
    let _ = std::fs::remove_dir_all(&project);
}
