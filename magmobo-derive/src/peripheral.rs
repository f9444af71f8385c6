//! `#[derive(Peripheral)]`: `PeripheralMeta` from `#[peripheral(...)]`, with subscription
//! patterns checked at compile time, and a `Plug` impl that adds the peripheral to the board.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{DeriveInput, LitStr};

use crate::attrs::{self, Errors, Kind};
use crate::common;

/// The keys `#[peripheral(...)]` accepts (besides `crate`).
const KEYS: &[(&str, Kind)] = &[
    ("name", Kind::Str),
    ("title", Kind::Str),
    ("version", Kind::Str),
    ("subscribes", Kind::Strs),
    ("capabilities", Kind::Strs),
    ("depends_on", Kind::Strs),
    ("required", Kind::Flag),
];

/// Expands `#[derive(Peripheral)]` on `input`.
pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let args = attrs::parse(input, "peripheral", KEYS, &mut errors);
    for pattern in args.strs("subscribes") {
        if let Err(why) = attrs::check_topic(&pattern.value(), true) {
            errors.at(
                pattern.span(),
                format!("invalid subscription pattern {:?}: {why}", pattern.value()),
            );
        }
    }
    errors.finish()?;

    let krate = &args.krate;
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let name = args.str("name").cloned().unwrap_or_else(|| {
        LitStr::new(&attrs::kebab_case(&common::type_name(input)), ident.span())
    });
    let version = common::version(args.str("version"));
    let mut fields = Vec::new();
    if let Some(title) = args.str("title") {
        let title = common::label(title);
        fields.push(quote!(info.title = #title;));
    }
    for key in ["subscribes", "capabilities", "depends_on"] {
        let labels: Vec<TokenStream> = args.strs(key).iter().map(common::label).collect();
        if !labels.is_empty() {
            let field = proc_macro2::Ident::new(key, proc_macro2::Span::call_site());
            fields.push(quote!(info.#field = ::std::vec![#(#labels),*];));
        }
    }
    let new_info = quote!(#krate::PeripheralInfo::new(#name, #version));
    let body = common::info_body(new_info, &fields);

    let required = args.flag("required");
    let plug = common::plug_impl(
        input,
        krate,
        quote!(#krate::Peripheral),
        quote!(put_peripheral(self, #required)),
        proc_macro2::Span::call_site(),
    );
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics #krate::PeripheralMeta for #ident #ty_generics #where_clause {
            fn peripheral_info(&self) -> #krate::PeripheralInfo {
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

    #[test]
    fn full_attribute() {
        let input = syn::parse2(quote! {
            #[peripheral(name = "webhooks", title = "Webhooks", version = "1.0.0",
                subscribes("table.*.changed", "auth.*"), capabilities("bus.publish"),
                depends_on("maggate"), required)]
            struct Webhooks;
        })
        .expect("input parses");
        let out = squash(&expand(&input).expect("expands"));
        for expected in [
            "impl::magmobo::PeripheralMetaforWebhooks{fnperipheral_info(&self)->::magmobo::PeripheralInfo{",
            "letmutinfo=::magmobo::PeripheralInfo::new(\"webhooks\",\"1.0.0\");",
            "info.title=::std::borrow::Cow::Borrowed(\"Webhooks\");",
            "info.subscribes=::std::vec![::std::borrow::Cow::Borrowed(\"table.*.changed\"),::std::borrow::Cow::Borrowed(\"auth.*\")];",
            "info.capabilities=::std::vec![::std::borrow::Cow::Borrowed(\"bus.publish\")];",
            "info.depends_on=::std::vec![::std::borrow::Cow::Borrowed(\"maggate\")];",
            "board.put_peripheral(self,true);",
        ] {
            assert!(out.contains(expected), "missing {expected} in {out}");
        }
    }

    #[test]
    fn defaults() {
        let input = syn::parse2(quote! { struct MqttBridge; }).expect("input parses");
        let out = squash(&expand(&input).expect("expands"));
        assert!(
            out.contains(
                "{::magmobo::PeripheralInfo::new(\"mqtt-bridge\",::core::env!(\"CARGO_PKG_VERSION\"))}"
            ),
            "{out}"
        );
        assert!(out.contains("board.put_peripheral(self,false);"), "{out}");
    }

    #[test]
    fn bad_patterns_are_all_reported() {
        let input = syn::parse2(quote! {
            #[peripheral(subscribes("table..changed", "auth.*", "a b"))]
            struct P;
        })
        .expect("input parses");
        assert_eq!(
            messages(expand(&input).expect_err("invalid")),
            [
                "invalid subscription pattern \"table..changed\": it has an empty segment (two dots, or a dot at an end)",
                "invalid subscription pattern \"a b\": segments may hold only letters, digits, '_', '-' and ':'",
            ]
        );
    }
}
