// A component with every key, and one with only the slot (name and version defaulted).
use magmobo::axum::body::Bytes;
use magmobo::roles::cache::{Cache, SetOptions};
use magmobo::{ComponentMeta, Motherboard, Result, Slot};

#[derive(magmobo::Component)]
#[component(
    slot = "ram",
    name = "Moka",
    version = "1.2.0",
    capabilities("cache.read", "cache.write"),
    depends_on(storage)
)]
struct MokaCache {
    _capacity: usize,
}

#[derive(magmobo::Component)]
#[component(slot = ram)]
struct NullCache;

macro_rules! null_cache {
    ($ty:ty) => {
        impl magmobo::Component for $ty {}

        #[magmobo::async_trait]
        impl Cache for $ty {
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
    };
}
null_cache!(MokaCache);
null_cache!(NullCache);

fn main() {
    let info = MokaCache { _capacity: 10 }.component_info();
    assert_eq!(info.name, "Moka");
    assert_eq!(info.version, "1.2.0");
    assert_eq!(info.slot, Slot::Ram);
    assert_eq!(info.capabilities, ["cache.read", "cache.write"]);
    assert_eq!(info.depends_on, [Slot::Storage]);

    let info = NullCache.component_info();
    assert_eq!(info.name, "NullCache");
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert!(info.capabilities.is_empty() && info.depends_on.is_empty());

    let board = Motherboard::builder()
        .with(NullCache)
        .build()
        .expect("builds");
    let cache = board.cache().expect("the RAM slot is filled");
    assert_eq!(cache.component_info().name, "NullCache");
}
