//! The audit table: install, append with the hash chain, query, verify. Plain SQL that runs
//! unchanged on PostgreSQL, MySQL/MariaDB and SQLite; the detail is stored as the exact JSON
//! text that was hashed, so verification never depends on how a JSON library orders keys.

use std::sync::Arc;

use magmobo_core::Result;
use magmobo_core::roles::storage::{Migration, Row, Storage, Value};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS _magmobo_audit (\
    seq BIGINT PRIMARY KEY, at_ms BIGINT NOT NULL, kind VARCHAR(200) NOT NULL, \
    identity VARCHAR(200), source VARCHAR(200), summary TEXT NOT NULL, detail TEXT NOT NULL, \
    prev_hash VARCHAR(64) NOT NULL, hash VARCHAR(64) NOT NULL)";

/// One row whose lock serialises appenders: every append first updates it, so writers on
/// several instances sharing one table take turns (row locks on PostgreSQL and MariaDB;
/// SQLite has one writer at a time anyway) and each one chains onto the true head.
const LOCK_TABLE_SQL: &str =
    "CREATE TABLE IF NOT EXISTS _magmobo_audit_lock (id INTEGER PRIMARY KEY)";
const LOCK_ROW_SQL: &str = "INSERT INTO _magmobo_audit_lock (id) VALUES (1)";
const TAKE_LOCK_SQL: &str = "UPDATE _magmobo_audit_lock SET id = 1 WHERE id = 1";
const HEAD_SQL: &str = "SELECT seq, hash FROM _magmobo_audit ORDER BY seq DESC LIMIT 1";

/// The hash before the first entry.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An entry to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// What happened, as a dotted topic (`threat.detected`, `auth.key.rejected`...).
    pub kind: String,
    /// Who did it (key id, user id, agent), when known.
    pub identity: Option<String>,
    /// Where from (an IP address), when known.
    pub source: Option<String>,
    /// One line for humans.
    pub summary: String,
    /// Everything else, as JSON.
    pub detail: serde_json::Value,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// What happened.
    pub kind: String,
    /// Who.
    pub identity: Option<String>,
    /// Where from.
    pub source: Option<String>,
    /// One line for humans.
    pub summary: String,
    /// The JSON detail as stored.
    pub detail: String,
    /// Hash of the previous entry.
    pub prev_hash: String,
    /// Hash of this entry.
    pub hash: String,
}

/// Which entries to read (also the payload of the platform API's `audit.query` request).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditFilter {
    /// Kinds starting with this (e.g. `threat`).
    pub kind: Option<String>,
    /// Exact identity.
    pub identity: Option<String>,
    /// Exact source.
    pub source: Option<String>,
    /// At or after this time (ms).
    pub since_ms: Option<i64>,
    /// Entries after this sequence number (for `--follow`).
    pub after_seq: Option<i64>,
    /// At most this many, newest last.
    pub limit: Option<u32>,
}

/// The outcome of [`AuditStore::verify`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    /// Entries checked.
    pub checked: u64,
    /// The first entry that does not fit the chain, and why; `None` when intact.
    pub broken: Option<(i64, String)>,
}

/// Reads and writes the audit table.
#[derive(Clone)]
pub struct AuditStore {
    storage: Arc<dyn Storage>,
}

impl std::fmt::Debug for AuditStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditStore")
    }
}

/// The text fields of an entry, in hashing order: kind, identity, source, summary, detail.
type Fields<'a> = [Option<&'a str>; 5];

fn head_of(rows: &[Row]) -> Result<(i64, String)> {
    match rows.first() {
        Some(row) => Ok((row.get_int("seq")?, row.get_text("hash")?)),
        None => Ok((0, GENESIS.to_owned())),
    }
}

fn chain_hash(prev: &str, seq: i64, at_ms: i64, fields: Fields<'_>) -> String {
    let mut hasher = Sha256::new();
    let numbers = [seq.to_string(), at_ms.to_string()];
    let all = [
        Some(prev),
        Some(numbers[0].as_str()),
        Some(numbers[1].as_str()),
    ]
    .into_iter()
    .chain(fields);
    for part in all {
        // An absent value hashes differently from any text, even an empty one.
        let part = part.unwrap_or("\u{0}");
        // Length-prefixed, so no two different entries hash the same bytes.
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl AuditStore {
    /// A store on `storage`.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        AuditStore { storage }
    }

    /// Creates the table if needed (a recorded migration).
    pub async fn install(&self) -> Result<()> {
        let migrations = [
            Migration::portable(1, "audit log", TABLE_SQL),
            Migration::portable(2, "audit append lock", LOCK_TABLE_SQL),
            Migration::portable(3, "audit append lock row", LOCK_ROW_SQL),
        ];
        self.storage
            .migrate("sentinel-audit", &migrations)
            .await
            .map(|_| ())
    }

    /// The last `(seq, hash)`, or `(0, genesis)` for an empty log.
    pub async fn head(&self) -> Result<(i64, String)> {
        head_of(&self.storage.query(HEAD_SQL, &[]).await?)
    }

    /// Appends entries in one transaction after the current head, holding the append lock
    /// until it commits (so several writers on one table never fork the chain); returns the
    /// new head.
    pub async fn append(&self, entries: &[NewEntry]) -> Result<(i64, String)> {
        let d = self.storage.dialect();
        let sql = format!(
            "INSERT INTO _magmobo_audit (seq, at_ms, kind, identity, source, summary, detail, prev_hash, hash) VALUES ({})",
            d.placeholders(9)
        );
        let mut tx = self.storage.begin().await?;
        tx.execute(TAKE_LOCK_SQL, &[]).await?;
        let (mut seq, mut prev) = head_of(&tx.query(HEAD_SQL, &[]).await?)?;
        for entry in entries {
            seq += 1;
            let detail = entry.detail.to_string();
            let fields = [
                Some(entry.kind.as_str()),
                entry.identity.as_deref(),
                entry.source.as_deref(),
                Some(entry.summary.as_str()),
                Some(detail.as_str()),
            ];
            let hash = chain_hash(&prev, seq, entry.at_ms, fields);
            let params = [
                Value::Int(seq),
                Value::Int(entry.at_ms),
                Value::Text(entry.kind.clone()),
                entry.identity.clone().map_or(Value::Null, Value::Text),
                entry.source.clone().map_or(Value::Null, Value::Text),
                Value::Text(entry.summary.clone()),
                Value::Text(detail),
                Value::Text(prev.clone()),
                Value::Text(hash.clone()),
            ];
            tx.execute(&sql, &params).await?;
            prev = hash;
        }
        tx.commit().await?;
        Ok((seq, prev))
    }

    /// Entries matching `filter`, oldest first.
    pub async fn query(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let d = self.storage.dialect();
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        let mut add = |condition: &str, value: Value| {
            params.push(value);
            conditions.push(condition.replace('?', &d.placeholder(params.len())));
        };
        if let Some(kind) = &filter.kind {
            add(
                "kind LIKE ?",
                Value::Text(format!("{}%", kind.replace(['%', '_'], ""))),
            );
        }
        if let Some(identity) = &filter.identity {
            add("identity = ?", Value::Text(identity.clone()));
        }
        if let Some(source) = &filter.source {
            add("source = ?", Value::Text(source.clone()));
        }
        if let Some(since) = filter.since_ms {
            add("at_ms >= ?", Value::Int(since));
        }
        if let Some(after) = filter.after_seq {
            add("seq > ?", Value::Int(after));
        }
        let mut sql = "SELECT seq, at_ms, kind, identity, source, summary, detail, prev_hash, hash FROM _magmobo_audit".to_owned();
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        // The newest `limit` entries, returned oldest first.
        sql.push_str(" ORDER BY seq DESC");
        if let Some(limit) = filter.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let rows = self.storage.query(&sql, &params).await?;
        let mut entries = rows.iter().map(entry).collect::<Result<Vec<_>>>()?;
        entries.reverse();
        Ok(entries)
    }

    /// Re-computes the whole chain: gaps (deleted entries), broken links and edited entries are
    /// reported with the first sequence number where the chain stops holding.
    pub async fn verify(&self) -> Result<VerifyReport> {
        let rows = self
            .storage
            .query(
                "SELECT seq, at_ms, kind, identity, source, summary, detail, prev_hash, hash FROM _magmobo_audit ORDER BY seq",
                &[],
            )
            .await?;
        let mut prev = GENESIS.to_owned();
        let mut checked = 0;
        for (expected_seq, row) in (1..).zip(rows.iter()) {
            let e = entry(row)?;
            checked += 1;
            let broken = if e.seq != expected_seq {
                Some(format!(
                    "expected entry {expected_seq}, found {}: entries were deleted or inserted",
                    e.seq
                ))
            } else if e.prev_hash != prev {
                Some("its link to the previous entry does not match: an earlier entry was changed or removed".to_owned())
            } else if chain_hash(&prev, e.seq, e.at_ms, fields_of(&e)) != e.hash {
                Some("its content does not match its hash: the entry was edited".to_owned())
            } else {
                None
            };
            if let Some(why) = broken {
                return Ok(VerifyReport {
                    checked,
                    broken: Some((e.seq, why)),
                });
            }
            prev = e.hash;
        }
        Ok(VerifyReport {
            checked,
            broken: None,
        })
    }
}

fn fields_of(e: &AuditEntry) -> Fields<'_> {
    [
        Some(e.kind.as_str()),
        e.identity.as_deref(),
        e.source.as_deref(),
        Some(e.summary.as_str()),
        Some(e.detail.as_str()),
    ]
}

fn entry(row: &Row) -> Result<AuditEntry> {
    Ok(AuditEntry {
        seq: row.get_int("seq")?,
        at_ms: row.get_int("at_ms")?,
        kind: row.get_text("kind")?,
        identity: row.get_opt_text("identity")?,
        source: row.get_opt_text("source")?,
        summary: row.get_text("summary")?,
        detail: row.get_text("detail")?,
        prev_hash: row.get_text("prev_hash")?,
        hash: row.get_text("hash")?,
    })
}
