//! The quick-start walkthrough (docs/quickstart.md) run against the built binary, as a user
//! would type it: init, create a table with `magflock sql`, start, read rows with a key, be
//! refused without one, and see an injection blocked by SQLGuard. On SQLite and PostgreSQL.

// Tests unwrap freely: a panic with the value is the clearest failure.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use magmobo_integration_tests::services::postgres_or_skip;

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
        let mut child = magflock(project, database_url)
            .args(["start", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start magflock");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if tx.send(line).is_err() {
                    break;
                }
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
