//! `#[derive(BusEvent)]`: gives a serialisable type its bus topic from
//! `#[bus_event(topic = "...")]`, rejecting malformed topics at compile time.

use proc_macro2::TokenStream;
use quote::quote;
use syn::DeriveInput;

use crate::attrs::{self, Errors, Kind};

/// The keys `#[bus_event(...)]` accepts (besides `crate`).
const KEYS: &[(&str, Kind)] = &[("topic", Kind::Str)];

/// Expands `#[derive(BusEvent)]` on `input`.
pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let args = attrs::parse(input, "bus_event", KEYS, &mut errors);
    let topic = args.str("topic");
    match topic {
        Some(topic) => {
            if let Err(why) = attrs::check_topic(&topic.value(), false) {
                errors.at(topic.span(), format!("invalid bus topic {:?}: {why}", topic.value()));
            }
        }
        None if !args.has("topic") => errors.missing(
            &args,
            input.ident.span(),
            "`#[derive(BusEvent)]` needs a topic: add `#[bus_event(topic = \"area.thing.happened\")]`",
        ),
        None => {}
    }
    errors.finish()?;
    let Some(topic) = topic else {
        return Err(syn::Error::new(input.ident.span(), "missing topic"));
    };

    let krate = &args.krate;
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics #krate::bus::BusEvent for #ident #ty_generics #where_clause {
            const TOPIC: &'static str = #topic;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::{messages, squash};

    fn errors(tokens: TokenStream) -> Vec<String> {
        let input = syn::parse2(tokens).expect("input parses");
        messages(expand(&input).expect_err("invalid"))
    }

    #[test]
    fn topic_constant() {
        let input = syn::parse2(quote! {
            #[bus_event(topic = "auth.login.failed")]
            #[magmobo(crate = ::magmobo_core)]
            struct LoginFailed<T> { user: T }
        })
        .expect("input parses");
        assert_eq!(
            squash(&expand(&input).expect("expands")),
            "#[automatically_derived]impl<T>::magmobo_core::bus::BusEventforLoginFailed<T>{constTOPIC:&'staticstr=\"auth.login.failed\";}"
        );
    }

    #[test]
    fn invalid_topics() {
        assert_eq!(
            errors(quote! { #[bus_event(topic = "auth.*")] struct E; }),
            ["invalid bus topic \"auth.*\": wildcards are for subscriptions, not for publishing"]
        );
        assert_eq!(
            errors(quote! { #[bus_event(topic = "auth..x")] struct E; }),
            [
                "invalid bus topic \"auth..x\": it has an empty segment (two dots, or a dot at an end)"
            ]
        );
        assert_eq!(
            errors(quote! { #[bus_event(topic = "")] struct E; }),
            ["`topic` must not be empty"]
        );
    }

    #[test]
    fn missing_topic() {
        assert_eq!(
            errors(quote! { struct E; }),
            [
                "`#[derive(BusEvent)]` needs a topic: add `#[bus_event(topic = \"area.thing.happened\")]`"
            ]
        );
    }
}
