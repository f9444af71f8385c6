// Generic parts: the `Plug` impl applies exactly where the role trait does.
use std::marker::PhantomData;

use magmobo::axum::body::Bytes;
use magmobo::roles::cache::{Cache, SetOptions};
use magmobo::{ComponentMeta, ExtensionMeta, Motherboard, Result};

trait Backend: Send + Sync + 'static {
    const NAME: &'static str;
}
struct Memory;
impl Backend for Memory {
    const NAME: &'static str = "memory";
}

#[derive(magmobo::Component)]
#[component(slot = "ram", name = "GenericCache")]
struct GenericCache<B: Backend, const N: usize>
where
    B: Send,
{
    _backend: PhantomData<B>,
}

impl<B: Backend, const N: usize> magmobo::Component for GenericCache<B, N> {}

#[magmobo::async_trait]
impl<B: Backend, const N: usize> Cache for GenericCache<B, N> {
    async fn get(&self, _key: &str) -> Result<Option<Bytes>> {
        Ok(Some(Bytes::from_static(B::NAME.as_bytes())))
    }
    async fn set(&self, _key: &str, _value: Bytes, _options: SetOptions) -> Result<()> {
        Ok(())
    }
    async fn delete(&self, _key: &str) -> Result<bool> {
        Ok(false)
    }
    async fn invalidate_prefix(&self, _prefix: &str) -> Result<u64> {
        Ok(N as u64)
    }
    async fn invalidate_tag(&self, _tag: &str) -> Result<u64> {
        Ok(0)
    }
}

#[derive(magmobo::Extension)]
#[extension(capabilities("cache.read"))]
struct Tagged<T>(T);
impl<T: Send + Sync + 'static> magmobo::Extension for Tagged<T> {}

fn main() {
    let cache = GenericCache::<Memory, 4> {
        _backend: PhantomData,
    };
    assert_eq!(cache.component_info().name, "GenericCache");
    assert_eq!(Tagged(1u8).extension_info().name, "tagged");
    let board = Motherboard::builder()
        .with((cache, Tagged("x")))
        .build()
        .expect("builds");
    assert!(board.cache().is_some());
    assert!(board.extension("tagged").is_some());
}
