//! `magflock logs`: reads the audit table straight from the project's database, so it works
//! whether or not the server is running.

use std::sync::Arc;
use std::time::Duration;

use magmobo::prelude::*;
use sentinel::audit::{AuditEntry, AuditFilter, AuditStore};

use crate::LogsArgs;
use crate::commands::{Failure, storage};
use crate::settings::Loaded;

fn parse_age(text: &str) -> Option<i64> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return None,
    };
    Some(seconds * 1000)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn print(entry: &AuditEntry, json: bool) {
    if json {
        say!("{}", serde_json::to_string(entry).unwrap_or_default());
        return;
    }
    let at = chrono::DateTime::from_timestamp_millis(entry.at_ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| entry.at_ms.to_string());
    say!(
        "#{:<5} {at}  {:<20} {:<15} {}",
        entry.seq,
        entry.kind,
        entry.source.as_deref().unwrap_or("-"),
        entry.summary
    );
}

/// Runs `magflock logs`.
pub async fn run(loaded: &Loaded, args: &LogsArgs) -> Result<(), Failure> {
    let storage: Arc<dyn Storage> = Arc::new(storage(loaded)?);
    let store = AuditStore::new(storage);
    store.install().await?;
    if args.verify {
        let report = store.verify().await?;
        return match report.broken {
            None => {
                say!(
                    "audit log intact: {} entries, hash chain verified",
                    report.checked
                );
                Ok(())
            }
            Some((seq, why)) => Err(Failure::Message(format!(
                "audit log TAMPERED at entry #{seq}: {why} ({} entries checked)",
                report.checked
            ))),
        };
    }
    let since_ms = match &args.since {
        Some(age) => Some(
            now_ms()
                - parse_age(age).ok_or_else(|| {
                    Failure::Message(format!(
                        "--since {age:?}: use a number with s, m, h or d, like 10m"
                    ))
                })?,
        ),
        None => None,
    };
    let mut filter = AuditFilter {
        kind: args.kind.clone(),
        identity: args.identity.clone(),
        source: args.source.clone(),
        since_ms,
        after_seq: None,
        limit: Some(args.limit),
    };
    loop {
        let entries = store.query(&filter).await?;
        for entry in &entries {
            print(entry, args.server.json);
        }
        if !args.follow {
            return Ok(());
        }
        if let Some(last) = entries.last() {
            filter.after_seq = Some(last.seq);
        }
        filter.limit = None;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(parse_age("10m"), Some(600_000));
        assert_eq!(parse_age("2h"), Some(7_200_000));
        assert_eq!(parse_age("7d"), Some(604_800_000));
        assert_eq!(parse_age("10"), None);
        assert_eq!(parse_age("m"), None);
        assert_eq!(parse_age("5w"), None);
    }
}
