//! `#[derive(Extension)]`: `ExtensionMeta` from `#[extension(...)]`, and a `Plug` impl that
//! adds the extension to the board, optional unless the attribute says `required`.

use proc_macro2::{Ident, TokenStream};
use quote::quote;
use syn::{DeriveInput, LitStr};

use crate::attrs::{self, Errors, Kind};
use crate::common;

/// The keys `#[extension(...)]` accepts (besides `crate`).
const KEYS: &[(&str, Kind)] = &[
    ("name", Kind::Str),
    ("title", Kind::Str),
    ("version", Kind::Str),
    ("capabilities", Kind::Strs),
    ("requires", Kind::Slots),
    ("depends_on", Kind::Strs),
    ("required", Kind::Flag),
];

/// Expands `#[derive(Extension)]` on `input`.
pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let args = attrs::parse(input, "extension", KEYS, &mut errors);
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
    let capabilities: Vec<TokenStream> = args
        .strs("capabilities")
        .iter()
        .map(common::label)
        .collect();
    if !capabilities.is_empty() {
        fields.push(quote!(info.capabilities = ::std::vec![#(#capabilities),*];));
    }
    let requires: Vec<Ident> = args
        .slots("requires")
        .iter()
        .map(|s| Ident::new(s.slot.variant, s.span))
        .collect();
    if !requires.is_empty() {
        fields.push(quote!(info.requires = ::std::vec![#(#krate::Slot::#requires),*];));
    }
    let depends_on: Vec<TokenStream> = args.strs("depends_on").iter().map(common::label).collect();
    if !depends_on.is_empty() {
        fields.push(quote!(info.depends_on = ::std::vec![#(#depends_on),*];));
    }
    let new_info = quote!(#krate::ExtensionInfo::new(#name, #version));
    let body = common::info_body(new_info, &fields);

    let required = args.flag("required");
    let plug = common::plug_impl(
        input,
        krate,
        quote!(#krate::Extension),
        quote!(put_extension(self, #required)),
        proc_macro2::Span::call_site(),
    );
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics #krate::ExtensionMeta for #ident #ty_generics #where_clause {
            fn extension_info(&self) -> #krate::ExtensionInfo {
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

    #[test]
    fn full_attribute() {
        let out = expand_ok(quote! {
            #[extension(name = "maggate", title = "MagGate API Generator", version = "0.3.0",
                capabilities("storage.read", "cpu.mount"), requires(storage), depends_on("other-ext"),
                required)]
            struct MagGate;
        });
        for expected in [
            "impl::magmobo::ExtensionMetaforMagGate{fnextension_info(&self)->::magmobo::ExtensionInfo{",
            "letmutinfo=::magmobo::ExtensionInfo::new(\"maggate\",\"0.3.0\");",
            "info.title=::std::borrow::Cow::Borrowed(\"MagGate API Generator\");",
            "info.capabilities=::std::vec![::std::borrow::Cow::Borrowed(\"storage.read\"),::std::borrow::Cow::Borrowed(\"cpu.mount\")];",
            "info.requires=::std::vec![::magmobo::Slot::Storage];",
            "info.depends_on=::std::vec![::std::borrow::Cow::Borrowed(\"other-ext\")];",
            "impl::magmobo::PlugforMagGate{",
            "board.put_extension(self,true);",
        ] {
            assert!(out.contains(expected), "missing {expected} in {out}");
        }
    }

    #[test]
    fn defaults() {
        let out = expand_ok(quote! { struct RealtimeHub { n: u8 } });
        assert!(
            out.contains(
                "{::magmobo::ExtensionInfo::new(\"realtime-hub\",::core::env!(\"CARGO_PKG_VERSION\"))}"
            ),
            "{out}"
        );
        assert!(out.contains("board.put_extension(self,false);"), "{out}");
    }

    #[test]
    fn generic_extension_is_bounded() {
        let out = expand_ok(quote! {
            #[extension(required = false)]
            struct Gate<S>(S);
        });
        assert!(
            out.contains("impl<S>::magmobo::PlugforGate<S>whereGate<S>:::magmobo::Extension{"),
            "{out}"
        );
    }

    #[test]
    fn errors() {
        let input = syn::parse2(quote! {
            #[extension(slot = "ram", requires(memory), depends_on(other))]
            struct E;
        })
        .expect("input parses");
        let errors = messages(expand(&input).expect_err("invalid"));
        assert_eq!(
            errors,
            [
                "unknown key `slot` in `#[extension(...)]`. Valid keys: name, title, version, capabilities, requires, depends_on, required, crate",
                "unknown slot `memory`. Valid slots: cpu, ram, gpu, storage, psu",
                "`depends_on(...)` takes string literals, found a path; did you mean `\"other\"`?",
            ]
        );
    }
}
