//! Derive macros for MagMoBo parts, re-exported by the `magmobo` facade crate.
//!
//! | derive | attribute | generates |
//! |---|---|---|
//! | `Component` | `#[component(slot = "ram", name, version, capabilities(..), depends_on(..))]` | `ComponentMeta`, `Plug` |
//! | `Extension` | `#[extension(name, title, version, capabilities(..), requires(..), depends_on(..), required)]` | `ExtensionMeta`, `Plug` |
//! | `Peripheral` | `#[peripheral(name, title, version, subscribes(..), capabilities(..), depends_on(..), required)]` | `PeripheralMeta`, `Plug` |
//! | `BusEvent` | `#[bus_event(topic = "auth.login.failed")]` | `bus::BusEvent` |
//!
//! ```ignore
//! use magmobo::prelude::*;
//!
//! #[derive(magmobo::Component)]
//! #[component(slot = "ram", name = "Moka", capabilities("cache.read"), depends_on(storage))]
//! struct MokaCache { /* ... */ }
//! // + `impl Component for MokaCache {}` and `impl Cache for MokaCache { ... }`
//!
//! #[derive(magmobo::Extension)]
//! #[extension(name = "maggate", title = "MagGate API Generator",
//!             capabilities("storage.read", "cpu.mount"), required)]
//! struct MagGate;
//!
//! let board = Motherboard::builder().with((MokaCache::new(), MagGate)).build()?;
//! ```
//!
//! Defaults: a component's `name` is the type name; an extension's or peripheral's is the
//! type name in kebab-case and its `title` is the name; `version` is the deriving crate's
//! `CARGO_PKG_VERSION`. Slots are written `cpu`, `ram`, `gpu`, `storage` or `psu`, as a
//! string or a bare word. `required` (or `required = true`) makes a failing extension or
//! peripheral stop the boot.
//!
//! The `Plug` impl of a component calls the builder method of its slot, so a type declared for
//! the RAM slot that does not implement `Cache` is a compile error pointing at `slot = "ram"`.
//!
//! Code that depends on `magmobo-core` rather than the facade names the crate with
//! `#[magmobo(crate = ::magmobo_core)]`, or `crate = ...` inside any of the attributes above.
//!
//! The expansion lives in one module per derive, unit-tested on token streams; compile-time
//! behaviour (messages included) is covered by the trybuild cases in `magmobo/tests/ui`.

mod attrs;
mod bus_event;
mod common;
mod component;
mod extension;
mod peripheral;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

fn run(
    input: TokenStream,
    expand: fn(&DeriveInput) -> syn::Result<proc_macro2::TokenStream>,
) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Implements `ComponentMeta` and `Plug` from `#[component(...)]`.
///
/// Keys: `slot` (required: `cpu`, `ram`, `gpu`, `storage` or `psu`), `name` (default: the
/// type name), `version` (default: the crate's version), `capabilities("..", ..)`,
/// `depends_on(storage, ..)` (slots initialised first), `crate`. The type must also
/// implement `Component` and its slot's role trait (`Cache` for `ram`, ...).
#[proc_macro_derive(Component, attributes(component, magmobo))]
pub fn derive_component(input: TokenStream) -> TokenStream {
    run(input, component::expand)
}

/// Implements `ExtensionMeta` and `Plug` from `#[extension(...)]`.
///
/// Keys: `name` (default: the type name in kebab-case), `title` (default: the name),
/// `version`, `capabilities("storage.read", ..)`, `requires(storage, ..)`,
/// `depends_on("other-extension", ..)`, `required`, `crate`. The type must also implement
/// `Extension`.
#[proc_macro_derive(Extension, attributes(extension, magmobo))]
pub fn derive_extension(input: TokenStream) -> TokenStream {
    run(input, extension::expand)
}

/// Implements `PeripheralMeta` and `Plug` from `#[peripheral(...)]`.
///
/// Keys: `name` (default: the type name in kebab-case), `title` (default: the name),
/// `version`, `subscribes("table.*.changed", ..)` (patterns checked at compile time),
/// `capabilities(..)`, `depends_on(..)`, `required`, `crate`. The type must also implement
/// `Peripheral`.
#[proc_macro_derive(Peripheral, attributes(peripheral, magmobo))]
pub fn derive_peripheral(input: TokenStream) -> TokenStream {
    run(input, peripheral::expand)
}

/// Implements `bus::BusEvent` from `#[bus_event(topic = "area.thing.happened")]`.
///
/// The topic is checked at compile time: non-empty dot-separated segments of
/// `[A-Za-z0-9_:-]`, no `*`. The type must also derive `serde::Serialize` and
/// `serde::Deserialize`.
#[proc_macro_derive(BusEvent, attributes(bus_event, magmobo))]
pub fn derive_bus_event(input: TokenStream) -> TokenStream {
    run(input, bus_event::expand)
}
