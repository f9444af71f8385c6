// A whole board from one tuple; the derived identities are what the board reports.
use magmobo::axum::body::Bytes;
use magmobo::roles::cache::{Cache, SetOptions};
use magmobo::{ExtensionMeta, Motherboard, Result, Slot};

#[derive(magmobo::Component)]
#[component(
    slot = "ram",
    name = "Moka",
    version = "1.2.0",
    capabilities("cache.read")
)]
struct Moka;
impl magmobo::Component for Moka {}

#[magmobo::async_trait]
impl Cache for Moka {
    async fn get(&self, _key: &str) -> Result<Option<Bytes>> {
        Ok(None)
    }
    async fn set(&self, _key: &str, _value: Bytes, _options: SetOptions) -> Result<()> {
        Ok(())
    }
    async fn delete(&self, _key: &str) -> Result<bool> {
        Ok(false)
    }
    async fn invalidate_prefix(&self, _prefix: &str) -> Result<u64> {
        Ok(0)
    }
    async fn invalidate_tag(&self, _tag: &str) -> Result<u64> {
        Ok(0)
    }
}

#[derive(magmobo::Extension)]
#[extension(name = "cache-warmer", capabilities("cache.write"), required)]
struct CacheWarmer;
impl magmobo::Extension for CacheWarmer {}

#[derive(magmobo::Extension)]
#[extension(name = "stats", depends_on("cache-warmer"))]
struct Stats;
impl magmobo::Extension for Stats {}

#[derive(magmobo::Peripheral)]
#[peripheral(name = "audit-log", subscribes("*"))]
struct AuditLog;
impl magmobo::Peripheral for AuditLog {}

fn main() {
    // Stats is listed before the extension it depends on; the board orders them.
    let board = Motherboard::builder()
        .with((Stats, Moka, (CacheWarmer, AuditLog)))
        .build()
        .expect("builds");
    let ram = board.slots().component(Slot::Ram).expect("RAM filled");
    let info = ram.component_info();
    assert_eq!(
        (info.name.as_ref(), info.version.as_ref()),
        ("Moka", "1.2.0")
    );
    assert_eq!(info.capabilities, ["cache.read"]);
    let warmer = board.extension("cache-warmer").expect("registered");
    assert_eq!(warmer.extension_info().capabilities, ["cache.write"]);
    assert!(board.extension("stats").is_some());

    // Without the RAM component, the extension's capability names the missing slot.
    let error = Motherboard::builder()
        .with(CacheWarmer)
        .build()
        .expect_err("RAM is missing");
    let message = error.to_string();
    assert!(message.contains("cache-warmer"), "{message}");
}
