//! What a request presents: the `apikey` header and the `Authorization: Bearer` value, and
//! whether that bearer value is an API key or a JWT. Supabase clients send the project key in
//! `apikey` and either the same key or a user's JWT as the bearer token.

/// The bearer value, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bearer<'a> {
    /// An API key (`mf_...`), or anything when JWT verification is not configured (so it is
    /// refused as an invalid key, as before JWT support).
    Key(&'a str),
    /// Anything else when JWT verification is configured.
    Jwt(&'a str),
}

/// The credentials of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Credentials<'a> {
    pub(crate) apikey: Option<&'a str>,
    pub(crate) bearer: Option<Bearer<'a>>,
}

impl<'a> Credentials<'a> {
    /// Reads the headers; `jwt` says whether bearer values that are not API keys are JWTs.
    pub(crate) fn from_parts(parts: &'a http::request::Parts, jwt: bool) -> Self {
        let apikey = parts
            .headers
            .get("apikey")
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        let bearer = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|auth| auth.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .map(|token| {
                if jwt && !token.starts_with(magmobo_core::roles::api_keys::PREFIX) {
                    Bearer::Jwt(token)
                } else {
                    Bearer::Key(token)
                }
            });
        Credentials { apikey, bearer }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(headers: &[(&str, &str)], jwt: bool, expected: Credentials<'_>) {
        let mut request = http::Request::builder();
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (parts, ()) = request.body(()).unwrap().into_parts();
        assert_eq!(
            Credentials::from_parts(&parts, jwt),
            expected,
            "{headers:?}"
        );
    }

    #[test]
    fn bearer_values_are_keys_or_tokens() {
        let none = Credentials {
            apikey: None,
            bearer: None,
        };
        check(&[], true, none);
        check(&[("authorization", "Basic abc")], true, none);
        check(
            &[("apikey", " mf_k "), ("authorization", "Bearer mf_k")],
            true,
            Credentials {
                apikey: Some("mf_k"),
                bearer: Some(Bearer::Key("mf_k")),
            },
        );
        check(
            &[("authorization", "bearer a.b.c")],
            true,
            Credentials {
                apikey: None,
                bearer: Some(Bearer::Jwt("a.b.c")),
            },
        );
        check(
            &[("authorization", "Bearer a.b.c")],
            false,
            Credentials {
                apikey: None,
                bearer: Some(Bearer::Key("a.b.c")),
            },
        );
    }
}
