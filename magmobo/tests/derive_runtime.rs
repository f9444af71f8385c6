//! Derived parts on a real board: the identities from the attributes are what the POST report
//! shows, and a derived extension mounts.

// Tests unwrap freely: a panic with the value is the clearest failure.
#![allow(clippy::unwrap_used)]

use magmobo::axum::body::Bytes;
use magmobo::bios::LineStatus;
use magmobo::board::{ExtensionContext, PartState};
use magmobo::roles::cache::{Cache, SetOptions};
use magmobo::{Motherboard, Result, Slot, StopMode};

#[derive(magmobo::Component)]
#[component(
    slot = "ram",
    name = "Moka",
    version = "1.2.0",
    capabilities("cache.read")
)]
struct Moka;

#[magmobo::async_trait]
impl magmobo::Component for Moka {
    async fn self_test(&self) -> Result<String> {
        Ok("in-process, 0 entries".into())
    }
}

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
#[extension(title = "Cache Warmer", capabilities("cache.read"), required)]
struct CacheWarmer;

#[magmobo::async_trait]
impl magmobo::Extension for CacheWarmer {
    async fn start(&self, ctx: &ExtensionContext) -> Result<()> {
        // The capability declared in the attribute is what grants the handle.
        ctx.cache()?;
        Ok(())
    }
    fn summary(&self) -> Option<String> {
        Some("warm".into())
    }
}

#[tokio::test]
async fn derived_parts_boot_and_show_on_the_post_report() {
    let board = Motherboard::builder()
        .name("DeriveTest")
        .with((Moka, CacheWarmer))
        .build()
        .expect("the board builds");
    let report = board.boot().await.expect("the board boots");
    assert!(report.is_up(), "{}", report.failure_line());

    let ram = report
        .post
        .iter()
        .find(|line| line.slot == Slot::Ram)
        .expect("a RAM line");
    assert_eq!(ram.status, LineStatus::Ok);
    assert_eq!(ram.component.as_deref(), Some("Moka"));
    assert_eq!(ram.version.as_deref(), Some("1.2.0"));
    assert_eq!(ram.detail, "in-process, 0 entries");

    let [mounted] = report.extensions.as_slice() else {
        panic!("one extension line expected: {:?}", report.extensions);
    };
    assert_eq!(
        mounted.name, "cache-warmer",
        "default name is the type name in kebab-case"
    );
    assert_eq!(mounted.title, "Cache Warmer");
    assert_eq!(mounted.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(mounted.status, LineStatus::Ok);
    assert!(mounted.required);
    assert_eq!(mounted.detail.as_deref(), Some("warm"));
    assert_eq!(board.extension_state("cache-warmer"), Some(PartState::Up));

    board
        .shutdown(StopMode::Fast)
        .await
        .expect("the board stops");
}
