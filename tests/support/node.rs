//! The real JavaScript clients (postgrest-js, supabase-js) the tests drive: `tests/js`, its
//! `npm install` once per test process, and the CI policy when node or npm is missing.

use std::path::PathBuf;
use std::process::Command;

use crate::services::in_ci;

/// `tests/js`, where the clients and the scripts that drive them live.
pub fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// Installs the clients once per test process; `None` (only outside CI) when node or npm is
/// missing.
pub fn npm_ready(test: &str) -> Option<()> {
    let have = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !(have("node") && have("npm")) {
        assert!(!in_ci(), "{test}: node and npm are required in CI");
        eprintln!("SKIPPED {test}: node/npm not installed");
        return None;
    }
    static INSTALL: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut installed = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if !*installed {
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(js_dir())
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "npm install in tests/js failed"
        );
        *installed = true;
    }
    Some(())
}
