//! Pieces of expansion shared by the derives: labels, the default version, the `Plug` impl
//! and the output normaliser the unit tests compare against.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::{DeriveInput, LitStr, Path, WherePredicate};

/// `::std::borrow::Cow::Borrowed("text")`: a `magmobo::part::Label` from a literal.
pub(crate) fn label(text: &LitStr) -> TokenStream {
    quote!(::std::borrow::Cow::Borrowed(#text))
}

/// The version written in the attribute, else the deriving crate's `CARGO_PKG_VERSION`.
/// `env!` expands in the user's crate, so it is their version, not ours.
pub(crate) fn version(written: Option<&LitStr>) -> TokenStream {
    match written {
        Some(v) => v.to_token_stream(),
        None => quote!(::core::env!("CARGO_PKG_VERSION")),
    }
}

/// The type's name as a string literal (raw identifiers without `r#`).
pub(crate) fn type_name(input: &DeriveInput) -> String {
    let name = input.ident.to_string();
    name.strip_prefix("r#").map(str::to_owned).unwrap_or(name)
}

/// `impl Plug for T { fn plug(self, board) { <call> } }`. For a generic type the impl is
/// bounded by `role` (e.g. `T<X>: Cache`), so it applies exactly where the type can go in
/// its slot; for a plain type the call itself is checked where the type is declared, and
/// `call_span` puts the error on the attribute that chose the slot.
/// The body of a `*_info()` method: the `XInfo::new(..)` call, then one assignment per
/// attribute the user wrote, so fields added to core later keep their defaults.
pub(crate) fn info_body(new_info: TokenStream, fields: &[TokenStream]) -> TokenStream {
    if fields.is_empty() {
        new_info
    } else {
        quote::quote! {
            let mut info = #new_info;
            #(#fields)*
            info
        }
    }
}

pub(crate) fn plug_impl(
    input: &DeriveInput,
    krate: &Path,
    role: TokenStream,
    call: TokenStream,
    call_span: Span,
) -> TokenStream {
    let ident = &input.ident;
    let (impl_generics, ty_generics, _) = input.generics.split_for_impl();
    let mut generics = input.generics.clone();
    if !input.generics.params.is_empty() {
        let bound: WherePredicate = syn::parse_quote!(#ident #ty_generics: #role);
        generics.make_where_clause().predicates.push(bound);
    }
    let where_clause = &generics.where_clause;
    let board = quote_spanned!(call_span=> board);
    let body = quote_spanned!(call_span=> #board.#call;);
    quote! {
        #[automatically_derived]
        impl #impl_generics #krate::Plug for #ident #ty_generics #where_clause {
            fn plug(self, #board: &mut #krate::board::BoardBuilder) {
                #body
            }
        }
    }
}

/// The expansion as one string without the spaces between tokens (string literals are kept
/// as written), for assertions in unit tests.
#[cfg(test)]
pub(crate) fn squash(tokens: &TokenStream) -> String {
    let mut out = String::new();
    let (mut in_string, mut escaped) = (false, false);
    for c in tokens.to_string().chars() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// Every error message of a failed expansion, in order.
#[cfg(test)]
pub(crate) fn messages(error: syn::Error) -> Vec<String> {
    error.into_iter().map(|e| e.to_string()).collect()
}
