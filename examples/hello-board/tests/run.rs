//! Runs the built example as a user would: starts the binary, reads the POST screen from its
//! stdout, calls the route, sends SIGTERM, and expects a clean exit.

// Tests unwrap freely: a panic with the value is the clearest failure.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boots_with_the_post_screen_serves_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hello-board"))
        .env("HELLO_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start hello-board");
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        // Read to the end even after the test stopped listening, so the board's last
        // lines never meet a closed pipe.
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            let _ = lines_tx.send(line);
        }
    });
    let mut screen = Vec::new();
    let base = loop {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("POST screen");
        screen.push(line.clone());
        if let Some(at) = line.find("Listening on ") {
            break line[at + "Listening on ".len()..].trim().to_owned();
        }
    };
    let screen = screen.join("\n");
    for expected in [
        "MagMoBo BIOS v",
        "✓ CPU detected: HyperRouter (HTTP/1.1, HTTP/2)",
        "✓ RAM detected: TinyCache (in-process, 0 entries)",
        "POST complete. All components operational.",
        "Slot 1: Greeter v0.1.0  ✓ 1 route: GET /hello/{name}",
        "hello-board started.",
    ] {
        assert!(
            screen.contains(expected),
            "missing {expected:?} in:\n{screen}"
        );
    }
    assert!(!screen.contains('\x1b'), "piped output must be plain");

    let first: serde_json::Value = reqwest::get(format!("{base}/hello/ada"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second: serde_json::Value = reqwest::get(format!("{base}/hello/ada"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["greeting"], "Hello, ada!");
    assert_eq!(first["visits"], 1);
    assert_eq!(
        second["visits"], 2,
        "the visit count lives in the RAM component"
    );
    let health: serde_json::Value = reqwest::get(format!("{base}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");

    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = child.wait().expect("wait");
    assert!(
        status.success(),
        "hello-board exited with {status} after SIGTERM"
    );
}
