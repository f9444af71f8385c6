//! The audit extension: subscribes to security topics on the bus and writes entries in
//! batches from one task, recording any events the bus had to drop on the way.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use magmobo_core::board::ExtensionContext;
use magmobo_core::bus::{Event, ResponderGuard, Subscription};
use magmobo_core::prelude::*;
use magmobo_core::roles::platform::requests::{self, Refusal, reply_ok, reply_refused};
use tokio::sync::mpsc;

use super::store::{AuditFilter, AuditStore, NewEntry};

/// Entries one `audit.query` request returns when it names no limit, and at most.
const QUERY_DEFAULT_LIMIT: u32 = 100;
const QUERY_MAX_LIMIT: u32 = 1000;

/// Topics recorded by default: security decisions (`threat.*`, `auth.*`), the log's own
/// reports, extensions plugged or unplugged, what AI agents did (`agent.*`) and privileged
/// changes made through the platform API (`platform.*`).
pub const DEFAULT_TOPICS: [&str; 6] = [
    "threat.*",
    "auth.*",
    "audit.*",
    "extension.*",
    "agent.*",
    "platform.*",
];

/// The MagAudit extension.
pub struct AuditLog {
    topics: Vec<String>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    store: Mutex<Option<AuditStore>>,
    /// Answers the platform API's `audit.query` and `audit.verify` while started.
    responders: Mutex<Vec<ResponderGuard>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

impl Default for AuditLog {
    fn default() -> Self {
        AuditLog::new(DEFAULT_TOPICS.iter().map(|t| (*t).to_owned()).collect())
    }
}

impl AuditLog {
    /// An audit log recording events on `topics` (bus patterns).
    pub fn new(topics: Vec<String>) -> Self {
        AuditLog {
            topics,
            tasks: Mutex::new(Vec::new()),
            store: Mutex::new(None),
            responders: Mutex::new(Vec::new()),
        }
    }

    /// The store, once mounted (for queries and verification in-process).
    pub fn store(&self) -> Option<AuditStore> {
        self.store.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl ExtensionMeta for AuditLog {
    fn extension_info(&self) -> ExtensionInfo {
        let mut info = ExtensionInfo::new("audit", env!("CARGO_PKG_VERSION"));
        info.title = "MagAudit".into();
        info.capabilities = vec![
            caps::STORAGE_READ.into(),
            caps::STORAGE_WRITE.into(),
            caps::BUS_SUBSCRIBE.into(),
        ];
        info
    }
}

/// What an event becomes in the log.
fn to_entry(event: &Event) -> NewEntry {
    let p = &event.payload;
    let field = |name: &str| p.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let identity = field("identity")
        .or_else(|| field("key_id"))
        .or_else(|| field("user"))
        .or_else(|| field("by"));
    let source = field("source").or_else(|| field("ip"));
    let summary = match event.topic.as_str() {
        "threat.detected" => format!(
            "{} {} {} in '{}' (confidence {:.2})",
            field("agent").unwrap_or_else(|| event.source.clone()),
            field("action").unwrap_or_else(|| "saw".into()),
            field("kind").unwrap_or_else(|| "a threat".into()),
            field("parameter").unwrap_or_default(),
            p.get("confidence").and_then(|c| c.as_f64()).unwrap_or(0.0)
        ),
        "platform.action" => format!(
            "platform {} {}",
            field("action").unwrap_or_default(),
            field("outcome").unwrap_or_default()
        ),
        topic => match field("message")
            .or_else(|| field("name"))
            .or_else(|| field("code"))
        {
            Some(what) => format!("{topic}: {what}"),
            None => topic.to_owned(),
        },
    };
    NewEntry {
        at_ms: event.at_ms as i64,
        kind: event.topic.clone(),
        identity,
        source,
        summary,
        detail: serde_json::json!({ "from": event.source, "origin": event.origin, "payload": p }),
    }
}

fn overflow_entry(dropped: u64) -> NewEntry {
    let at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    NewEntry {
        at_ms,
        kind: "audit.overflow".into(),
        identity: None,
        source: None,
        summary: format!(
            "{dropped} events were dropped before reaching the audit log (bus queue full)"
        ),
        detail: serde_json::json!({ "dropped": dropped }),
    }
}

/// Forwards one subscription's events as entries, and records as `audit.overflow` any events
/// the bus dropped for it (its lag grew), checked on every event and every second.
async fn read_loop(mut subscription: Subscription, tx: mpsc::Sender<NewEntry>) {
    let mut reported = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let event = tokio::select! {
            event = subscription.recv() => match event {
                Some(event) => Some(event),
                None => return,
            },
            _ = tick.tick() => None,
        };
        let lagged = subscription.lagged();
        if lagged > reported {
            if tx.send(overflow_entry(lagged - reported)).await.is_err() {
                return;
            }
            reported = lagged;
        }
        if let Some(event) = event
            && tx.send(to_entry(&event)).await.is_err()
        {
            return;
        }
    }
}

/// Appends entries in batches; retries a failed batch (e.g. the database is down) with
/// backoff instead of dropping it. The readers live in a `JoinSet` owned here, so aborting
/// this task stops them too.
async fn write_loop(store: AuditStore, subscriptions: Vec<Subscription>) {
    let (tx, mut rx) = mpsc::channel::<NewEntry>(4096);
    let mut readers = tokio::task::JoinSet::new();
    for subscription in subscriptions {
        readers.spawn(read_loop(subscription, tx.clone()));
    }
    drop(tx);
    let mut batch = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(entry) => batch.push(entry),
                Err(_) => break,
            }
        }
        // Each subscription has its own reader task, so events of different topics can arrive
        // slightly out of order; within a batch they are put back in time order.
        batch.sort_by_key(|e| e.at_ms);
        let mut backoff = Duration::from_millis(100);
        loop {
            match store.append(&batch).await {
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, entries = batch.len(), "audit log: write failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        batch.clear();
    }
}

/// Answers `audit.query`: the filter from the payload, its limit defaulted and capped.
async fn answer_query(store: AuditStore, event: Arc<Event>) -> Result<serde_json::Value> {
    let mut filter: AuditFilter = match serde_json::from_value(event.payload.clone()) {
        Ok(filter) => filter,
        Err(e) => {
            return Ok(reply_refused(
                Refusal::new(400, format!("not an audit filter: {e}"))
                    .hint("filter by kind, identity, source, since_ms, after_seq and limit"),
            ));
        }
    };
    let limit = filter.limit.unwrap_or(QUERY_DEFAULT_LIMIT);
    if limit == 0 || limit > QUERY_MAX_LIMIT {
        return Ok(reply_refused(Refusal::new(
            400,
            format!("limit must be 1 to {QUERY_MAX_LIMIT}; page with after_seq"),
        )));
    }
    filter.limit = Some(limit);
    Ok(reply_ok(store.query(&filter).await?))
}

#[async_trait]
impl Extension for AuditLog {
    async fn install(&self, ctx: &ExtensionContext) -> Result<()> {
        AuditStore::new(ctx.storage()?).install().await
    }

    async fn start(&self, ctx: &ExtensionContext) -> Result<()> {
        let store = AuditStore::new(ctx.storage()?);
        let bus = ctx.bus()?;
        let subscriptions = self
            .topics
            .iter()
            .map(|t| bus.subscribe(t))
            .collect::<Result<Vec<_>>>()?;
        let task = tokio::spawn(write_loop(store.clone(), subscriptions));
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
        let for_query = store.clone();
        let query = bus.respond(requests::AUDIT_QUERY, move |event| {
            answer_query(for_query.clone(), event)
        })?;
        let for_verify = store.clone();
        let verify = bus.respond(requests::AUDIT_VERIFY, move |_| {
            let store = for_verify.clone();
            async move { Ok(reply_ok(store.verify().await?)) }
        })?;
        *self.responders.lock().unwrap_or_else(|e| e.into_inner()) = vec![query, verify];
        *self.store.lock().unwrap_or_else(|e| e.into_inner()) = Some(store);
        Ok(())
    }

    async fn stop(&self, _ctx: &ExtensionContext) -> Result<()> {
        self.responders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
        Ok(())
    }

    fn summary(&self) -> Option<String> {
        Some(format!("hash-chained, recording {}", self.topics.join(" ")))
    }
}
