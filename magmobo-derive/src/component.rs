//! `#[derive(Component)]`: `ComponentMeta` from `#[component(...)]`, and a `Plug` impl that
//! puts the value in its slot, so a type declared for a slot without that slot's role trait
//! does not compile.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::{DeriveInput, LitStr};

use crate::attrs::{self, Errors, Kind};
use crate::common;

/// The keys `#[component(...)]` accepts (besides `crate`).
const KEYS: &[(&str, Kind)] = &[
    ("slot", Kind::Slot),
    ("name", Kind::Str),
    ("version", Kind::Str),
    ("capabilities", Kind::Strs),
    ("depends_on", Kind::Slots),
];

/// Expands `#[derive(Component)]` on `input`.
pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let args = attrs::parse(input, "component", KEYS, &mut errors);
    let slot = args.slot("slot");
    if slot.is_none() && !args.has("slot") {
        errors.missing(
            &args,
            input.ident.span(),
            format!(
                "`#[derive(Component)]` needs a slot: add `#[component(slot = \"...\")]` with one of {}",
                attrs::slot_keys()
            ),
        );
    }
    if let Some(slot) = slot {
        for dep in args.slots("depends_on") {
            if dep.slot == slot.slot {
                errors.at(
                    dep.span,
                    format!(
                        "a component cannot depend on its own slot `{}`",
                        slot.slot.key
                    ),
                );
            }
        }
    }
    errors.finish()?;
    let Some(slot) = slot else {
        // Unreachable: a missing or invalid slot was reported above.
        return Err(syn::Error::new(Span::call_site(), "missing slot"));
    };

    let krate = &args.krate;
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let name = args
        .str("name")
        .cloned()
        .unwrap_or_else(|| LitStr::new(&common::type_name(input), ident.span()));
    let version = common::version(args.str("version"));
    let variant = Ident::new(slot.slot.variant, Span::call_site());
    let mut fields = Vec::new();
    let capabilities: Vec<TokenStream> = args
        .strs("capabilities")
        .iter()
        .map(common::label)
        .collect();
    if !capabilities.is_empty() {
        fields.push(quote!(info.capabilities = ::std::vec![#(#capabilities),*];));
    }
    let depends_on: Vec<Ident> = args
        .slots("depends_on")
        .iter()
        .map(|s| Ident::new(s.slot.variant, s.span))
        .collect();
    if !depends_on.is_empty() {
        fields.push(quote!(info.depends_on = ::std::vec![#(#krate::Slot::#depends_on),*];));
    }
    let new_info = quote!(#krate::ComponentInfo::new(#name, #version, #krate::Slot::#variant));
    let body = common::info_body(new_info, &fields);

    let role_path: syn::Path = syn::parse_str(slot.slot.role)?;
    let role = quote!(#krate::#role_path);
    let put = Ident::new(slot.slot.put, slot.span);
    let call = quote_spanned!(slot.span=> #put(self));
    let plug = common::plug_impl(input, krate, role, call, slot.span);
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics #krate::ComponentMeta for #ident #ty_generics #where_clause {
            fn component_info(&self) -> #krate::ComponentInfo {
                #body
            }
        }
        #plug
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::{messages, squash};

    fn expand_ok(tokens: TokenStream) -> String {
        let input = syn::parse2(tokens).expect("input parses");
        match expand(&input) {
            Ok(out) => squash(&out),
            Err(e) => panic!("unexpected errors: {:?}", messages(e)),
        }
    }

    fn expand_err(tokens: TokenStream) -> Vec<String> {
        let input = syn::parse2(tokens).expect("input parses");
        match expand(&input) {
            Ok(out) => panic!("expected errors, got {out}"),
            Err(e) => messages(e),
        }
    }

    #[test]
    fn full_attribute() {
        let out = expand_ok(quote! {
            #[component(slot = "ram", name = "Moka", version = "1.2.0",
                capabilities("cache.read", "cache.write"), depends_on(storage))]
            struct MokaCache { inner: u8 }
        });
        assert!(
            out.contains("impl::magmobo::ComponentMetaforMokaCache{"),
            "{out}"
        );
        assert!(
            out.contains(
                "letmutinfo=::magmobo::ComponentInfo::new(\"Moka\",\"1.2.0\",::magmobo::Slot::Ram);"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "info.capabilities=::std::vec![::std::borrow::Cow::Borrowed(\"cache.read\"),::std::borrow::Cow::Borrowed(\"cache.write\")];"
            ),
            "{out}"
        );
        assert!(
            out.contains("info.depends_on=::std::vec![::magmobo::Slot::Storage];"),
            "{out}"
        );
        assert!(out.contains("impl::magmobo::PlugforMokaCache{"), "{out}");
        assert!(
            out.contains(
                "fnplug(self,board:&mut::magmobo::board::BoardBuilder){board.put_ram(self);}"
            ),
            "{out}"
        );
    }

    #[test]
    fn defaults_are_the_type_name_and_the_crate_version() {
        let out = expand_ok(quote! {
            #[component(slot = "cpu")]
            struct HyperRouter;
        });
        assert!(
            out.contains(
                "{::magmobo::ComponentInfo::new(\"HyperRouter\",::core::env!(\"CARGO_PKG_VERSION\"),::magmobo::Slot::Cpu)}"
            ),
            "{out}"
        );
        assert!(out.contains("board.put_cpu(self);"), "{out}");
        assert!(!out.contains("letmut"), "{out}");
    }

    #[test]
    fn every_slot_calls_its_builder_method() {
        for (slot, call) in [
            ("cpu", "put_cpu"),
            ("ram", "put_ram"),
            ("gpu", "put_gpu"),
            ("storage", "put_storage"),
            ("psu", "put_psu"),
        ] {
            let slot = LitStr::new(slot, Span::call_site());
            let out = expand_ok(quote! { #[component(slot = #slot)] struct S(u8); });
            assert!(out.contains(&format!("board.{call}(self);")), "{out}");
        }
    }

    #[test]
    fn generics_bound_the_plug_impl_by_the_role() {
        let out = expand_ok(quote! {
            #[component(slot = "storage")]
            struct Db<T: Send, const N: usize> where T: Sync { t: T }
        });
        assert!(
            out.contains("impl<T:Send,constN:usize>::magmobo::ComponentMetaforDb<T,N>whereT:Sync{"),
            "{out}"
        );
        assert!(
            out.contains(
                "impl<T:Send,constN:usize>::magmobo::PlugforDb<T,N>whereT:Sync,Db<T,N>:::magmobo::roles::storage::Storage{"
            ),
            "{out}"
        );
    }

    #[test]
    fn crate_override() {
        let out = expand_ok(quote! {
            #[component(slot = "psu")]
            #[magmobo(crate = ::magmobo_core)]
            struct Keys;
        });
        assert!(
            out.contains("impl::magmobo_core::ComponentMetaforKeys"),
            "{out}"
        );
        assert!(out.contains("::magmobo_core::Slot::Psu"), "{out}");
        assert!(!out.contains("::magmobo::"), "{out}");
        let out = expand_ok(quote! {
            #[component(slot = "psu", crate = "crate::core")]
            struct Keys;
        });
        assert!(
            out.contains("implcrate::core::ComponentMetaforKeys"),
            "{out}"
        );
    }

    #[test]
    fn missing_slot() {
        assert_eq!(
            expand_err(quote! { #[component(name = "x")] struct S; }),
            [
                "`#[derive(Component)]` needs a slot: add `#[component(slot = \"...\")]` with one of cpu, ram, gpu, storage, psu"
            ]
        );
        assert_eq!(expand_err(quote! { struct S; }).len(), 1);
    }

    #[test]
    fn invalid_slot_is_reported_once() {
        assert_eq!(
            expand_err(quote! { #[component(slot = "memory", depends_on(ram, disk))] struct S; }),
            [
                "unknown slot `memory`. Valid slots: cpu, ram, gpu, storage, psu",
                "unknown slot `disk`. Valid slots: cpu, ram, gpu, storage, psu",
            ]
        );
    }

    #[test]
    fn self_dependency() {
        assert_eq!(
            expand_err(quote! { #[component(slot = "ram", depends_on(ram))] struct S; }),
            ["a component cannot depend on its own slot `ram`"]
        );
    }

    #[test]
    fn several_mistakes_at_once() {
        let errors = expand_err(quote! {
            #[component(slot = "ram", title = "x", version = 2, name = "a", name = "b")]
            struct S;
        });
        assert_eq!(
            errors,
            [
                "unknown key `title` in `#[component(...)]`. Valid keys: slot, name, version, capabilities, depends_on, crate",
                "`version` takes a string literal, found an integer: write `version = \"...\"`",
                "duplicate key `name`: give it once",
            ]
        );
    }
}
