//! Small real parts for tests: they implement the traits by hand (no derive) and record the
//! lifecycle calls they receive in a [`Journal`], so tests can assert order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use magmobo::axum::Router;
use magmobo::board::BoardBuilder;
use magmobo::bus::Event;
use magmobo::bytes::Bytes;
use magmobo::prelude::*;
use magmobo::roles::cache::SetOptions;

/// A shared log of lifecycle events, e.g. `init:MapCache`, `mount:gate`, `stop:MapCache`.
#[derive(Clone, Default, Debug)]
pub struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    /// Appends an entry.
    pub fn push(&self, entry: impl Into<String>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(entry.into());
    }
    /// All entries so far.
    pub fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    /// Position of an entry; panics with the whole journal when absent.
    pub fn position(&self, entry: &str) -> usize {
        let entries = self.entries();
        entries
            .iter()
            .position(|e| e == entry)
            .unwrap_or_else(|| panic!("{entry} not in journal {entries:?}"))
    }
}

/// An in-memory cache for the RAM slot (a real map, without expiry) that journals its
/// lifecycle.
pub struct MapCache {
    info: ComponentInfo,
    journal: Journal,
    self_test_failure: Option<String>,
    map: Mutex<HashMap<String, (Bytes, Vec<String>)>>,
}

impl MapCache {
    /// A cache named `name` writing to `journal`.
    pub fn new(name: &'static str, journal: &Journal) -> Self {
        MapCache {
            info: ComponentInfo::new(name, "0.0.1", Slot::Ram),
            journal: journal.clone(),
            self_test_failure: None,
            map: Mutex::new(HashMap::new()),
        }
    }
    /// Declares that the cache needs `slot` initialised first.
    pub fn depends_on(mut self, slot: Slot) -> Self {
        self.info.depends_on.push(slot);
        self
    }
    /// Makes the POST self-test fail with `why`.
    pub fn failing_self_test(mut self, why: &str) -> Self {
        self.self_test_failure = Some(why.to_owned());
        self
    }
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Bytes, Vec<String>)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ComponentMeta for MapCache {
    fn component_info(&self) -> ComponentInfo {
        self.info.clone()
    }
}

impl Plug for MapCache {
    fn plug(self, board: &mut BoardBuilder) {
        board.put_ram(self);
    }
}

#[async_trait]
impl Component for MapCache {
    async fn self_test(&self) -> Result<String> {
        match &self.self_test_failure {
            Some(why) => Err(Error::part(self.info.name.to_string(), why.clone())),
            None => Ok("in-memory map".into()),
        }
    }
    async fn init(&self, _board: &BoardContext) -> Result<()> {
        self.journal.push(format!("init:{}", self.info.name));
        Ok(())
    }
    async fn stop(&self, _mode: StopMode) -> Result<()> {
        self.journal.push(format!("stop:{}", self.info.name));
        Ok(())
    }
}

#[async_trait]
impl Cache for MapCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        Ok(self.map().get(key).map(|(v, _)| v.clone()))
    }
    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<()> {
        self.map().insert(key.to_owned(), (value, options.tags));
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        Ok(self.map().remove(key).is_some())
    }
    async fn invalidate_prefix(&self, prefix: &str) -> Result<u64> {
        let mut map = self.map();
        let before = map.len();
        map.retain(|k, _| !k.starts_with(prefix));
        Ok((before - map.len()) as u64)
    }
    async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, (_, tags)| !tags.iter().any(|t| t == tag));
        Ok((before - map.len()) as u64)
    }
}

/// What a [`TestExtension`] asks its context for during `init`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ask {
    /// `ctx.cpu()` and mount the extension's router.
    Cpu,
    /// `ctx.cache()`.
    Cache,
    /// `ctx.storage()`.
    Storage,
    /// `ctx.bus()` then publish `test.mounted`.
    Publish,
}

/// An extension that mounts a router, asks for handles, and journals its lifecycle.
pub struct TestExtension {
    info: ExtensionInfo,
    journal: Journal,
    router: Option<(String, Router)>,
    asks: Vec<Ask>,
    failure: Option<String>,
}

impl TestExtension {
    /// An extension named `name`.
    pub fn new(name: &'static str, journal: &Journal) -> Self {
        TestExtension {
            info: ExtensionInfo::new(name, "0.1.0"),
            journal: journal.clone(),
            router: None,
            asks: Vec::new(),
            failure: None,
        }
    }
    /// Declares a capability.
    pub fn capability(mut self, capability: &'static str) -> Self {
        self.info.capabilities.push(capability.into());
        self
    }
    /// Must mount after extension `other`.
    pub fn depends_on(mut self, other: &'static str) -> Self {
        self.info.depends_on.push(other.into());
        self
    }
    /// Mounts `router` under `prefix` at init (needs `cpu.mount`).
    pub fn route(mut self, prefix: &str, router: Router) -> Self {
        self.router = Some((prefix.to_owned(), router));
        self.asks.push(Ask::Cpu);
        self
    }
    /// Asks for a handle at init.
    pub fn asks(mut self, ask: Ask) -> Self {
        self.asks.push(ask);
        self
    }
    /// Fails at init with `why`.
    pub fn failing(mut self, why: &str) -> Self {
        self.failure = Some(why.to_owned());
        self
    }
}

impl ExtensionMeta for TestExtension {
    fn extension_info(&self) -> ExtensionInfo {
        self.info.clone()
    }
}

impl Plug for TestExtension {
    fn plug(self, board: &mut BoardBuilder) {
        board.put_extension(self, false);
    }
}

#[async_trait]
impl Extension for TestExtension {
    async fn init(&self, ctx: &ExtensionContext) -> Result<()> {
        if let Some(why) = &self.failure {
            return Err(Error::part(ctx.name(), why.clone()));
        }
        for ask in &self.asks {
            match ask {
                Ask::Cpu => {
                    let cpu = ctx.cpu()?;
                    if let Some((prefix, router)) = &self.router {
                        cpu.mount(prefix, router.clone())?;
                    }
                }
                Ask::Cache => drop(ctx.cache()?),
                Ask::Storage => drop(ctx.storage()?),
                Ask::Publish => ctx.bus()?.publish("test.mounted", serde_json::json!({}))?,
            }
        }
        self.journal.push(format!("mount:{}", self.info.name));
        Ok(())
    }
    async fn stop(&self, _ctx: &ExtensionContext) -> Result<()> {
        self.journal.push(format!("stop:{}", self.info.name));
        Ok(())
    }
    fn summary(&self) -> Option<String> {
        self.router
            .as_ref()
            .map(|(prefix, _)| format!("routes under {prefix}"))
    }
}

/// A peripheral that keeps every event the board sends it.
pub struct TestPeripheral {
    info: PeripheralInfo,
    received: Arc<Mutex<Vec<Arc<Event>>>>,
    failure: Option<String>,
}

impl TestPeripheral {
    /// A peripheral named `name` subscribed to `patterns`.
    pub fn new(name: &'static str, patterns: &[&'static str]) -> Self {
        let mut info = PeripheralInfo::new(name, "0.1.0");
        info.subscribes = patterns.iter().map(|p| (*p).into()).collect();
        TestPeripheral {
            info,
            received: Arc::default(),
            failure: None,
        }
    }
    /// Fails to connect with `why`.
    pub fn failing(mut self, why: &str) -> Self {
        self.failure = Some(why.to_owned());
        self
    }
    /// Events received so far (shared with the peripheral once on the board).
    pub fn inbox(&self) -> Arc<Mutex<Vec<Arc<Event>>>> {
        self.received.clone()
    }
}

impl PeripheralMeta for TestPeripheral {
    fn peripheral_info(&self) -> PeripheralInfo {
        self.info.clone()
    }
}

impl Plug for TestPeripheral {
    fn plug(self, board: &mut BoardBuilder) {
        board.put_peripheral(self, false);
    }
}

#[async_trait]
impl Peripheral for TestPeripheral {
    async fn connect(&self, ctx: &PeripheralContext) -> Result<()> {
        match &self.failure {
            Some(why) => Err(Error::part(ctx.name(), why.clone())),
            None => Ok(()),
        }
    }
    async fn send(&self, event: Arc<Event>) -> Result<()> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event);
        Ok(())
    }
}

/// A patrol agent that counts the bus events it watches (`watch` pattern) while running.
pub struct CountingPatrol {
    name: &'static str,
    watch: &'static str,
    seen: Arc<std::sync::atomic::AtomicUsize>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl CountingPatrol {
    /// An agent named `name` counting events matching `watch`.
    pub fn new(name: &'static str, watch: &'static str) -> Self {
        CountingPatrol {
            name,
            watch,
            seen: Arc::default(),
            task: Mutex::new(None),
        }
    }
    /// How many events it has seen (shared once on the board).
    pub fn counter(&self) -> Arc<std::sync::atomic::AtomicUsize> {
        self.seen.clone()
    }
}

#[async_trait]
impl Patrol for CountingPatrol {
    fn name(&self) -> &str {
        self.name
    }
    async fn start(&self, board: &BoardContext) -> Result<()> {
        let mut subscription = board.bus().subscribe(self.watch)?;
        let seen = self.seen.clone();
        let task = tokio::spawn(async move {
            while subscription.recv().await.is_some() {
                seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(())
    }
    async fn stop(&self) -> Result<()> {
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
        Ok(())
    }
}
