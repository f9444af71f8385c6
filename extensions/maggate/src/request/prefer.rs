//! The `Prefer` header (RFC 7240) as PostgREST reads it: which representation to return,
//! counting, upsert resolution, transaction end, and strict handling of unknown preferences.

use super::error::{Error, Result};

/// `return=`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreferReturn {
    /// `return=representation`: the affected rows in the body.
    Representation,
    /// `return=headers-only`: only the `Location` header.
    HeadersOnly,
    /// `return=minimal`: nothing.
    Minimal,
}

/// `count=`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreferCount {
    /// `count=exact`: `COUNT(*)`.
    Exact,
    /// `count=planned`: the planner's estimate.
    Planned,
    /// `count=estimated`: exact below `max-rows`, planned above.
    Estimated,
}

/// `resolution=` (upserts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreferResolution {
    /// `resolution=merge-duplicates`
    MergeDuplicates,
    /// `resolution=ignore-duplicates`
    IgnoreDuplicates,
}

/// `missing=` (columns absent from the payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreferMissing {
    /// `missing=default`: use column defaults.
    Default,
    /// `missing=null`: use NULL.
    Null,
}

/// `handling=`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreferHandling {
    /// `handling=strict`: unknown preferences are an error (PGRST122).
    Strict,
    /// `handling=lenient`: unknown preferences are ignored.
    Lenient,
}

/// `tx=`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreferTransaction {
    /// `tx=commit`
    Commit,
    /// `tx=rollback`
    Rollback,
}

/// Every preference PostgREST recognises. The first occurrence of each kind wins, across
/// all `Prefer` headers, as in PostgREST.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preferences<'h> {
    /// `return=`
    pub representation: Option<PreferReturn>,
    /// `count=`
    pub count: Option<PreferCount>,
    /// `resolution=`
    pub resolution: Option<PreferResolution>,
    /// `missing=`
    pub missing: Option<PreferMissing>,
    /// `handling=`
    pub handling: Option<PreferHandling>,
    /// `tx=`; whether clients may override the transaction end is a server setting applied
    /// later.
    pub transaction: Option<PreferTransaction>,
    /// `params=single-object` (deprecated in PostgREST, still accepted).
    pub single_object_params: bool,
    /// `timezone=`, when accepted by the timezone check given to [`Preferences::parse_with`].
    pub timezone: Option<&'h str>,
    /// `max-affected=N`; a non-integer N is ignored, as in PostgREST.
    pub max_affected: Option<i64>,
    /// Preferences that were not recognised, as sent.
    pub invalid: Vec<&'h str>,
}

const TOKENS: &[&str] = &[
    "return=representation",
    "return=headers-only",
    "return=minimal",
    "count=exact",
    "count=planned",
    "count=estimated",
    "resolution=merge-duplicates",
    "resolution=ignore-duplicates",
    "missing=default",
    "missing=null",
    "handling=strict",
    "handling=lenient",
    "tx=commit",
    "tx=rollback",
    "params=single-object",
];

impl<'h> Preferences<'h> {
    /// Parses the values of every `Prefer` header, accepting any `timezone=`.
    pub fn parse<I>(headers: I) -> Result<Preferences<'h>>
    where
        I: IntoIterator<Item = &'h str>,
    {
        Self::parse_with(headers, |_| true)
    }

    /// Parses the values of every `Prefer` header. `known_timezone` decides whether a
    /// `timezone=` value exists (PostgREST checks `pg_timezone_names`); an unknown one counts
    /// as an invalid preference. Fails with PGRST122 when `handling=strict` is present and
    /// any preference is invalid.
    pub fn parse_with<I, F>(headers: I, known_timezone: F) -> Result<Preferences<'h>>
    where
        I: IntoIterator<Item = &'h str>,
        F: Fn(&str) -> bool,
    {
        let mut p = Preferences::default();
        for header in headers {
            // An empty item (`a,,b` or a trailing comma) is invalid too, as in PostgREST.
            for raw in header.split(',') {
                let pref = raw.trim();
                p.apply(pref, &known_timezone);
            }
        }
        if p.handling == Some(PreferHandling::Strict) && !p.invalid.is_empty() {
            return Err(Error::InvalidPreferences(
                p.invalid.iter().map(|s| (*s).to_owned()).collect(),
            ));
        }
        Ok(p)
    }

    fn apply(&mut self, pref: &'h str, known_timezone: &impl Fn(&str) -> bool) {
        if let Some(tz) = pref.strip_prefix("timezone=") {
            if known_timezone(tz) {
                self.timezone = self.timezone.or(Some(tz));
            } else {
                self.invalid.push(pref);
            }
            return;
        }
        if let Some(n) = pref.strip_prefix("max-affected=") {
            if self.max_affected.is_none() {
                self.max_affected = n.parse().ok();
            }
            return;
        }
        if !TOKENS.contains(&pref) {
            self.invalid.push(pref);
            return;
        }
        let (kind, value) = pref.split_once('=').unwrap_or((pref, ""));
        match kind {
            "return" => {
                let v = match value {
                    "representation" => PreferReturn::Representation,
                    "headers-only" => PreferReturn::HeadersOnly,
                    _ => PreferReturn::Minimal,
                };
                self.representation = self.representation.or(Some(v));
            }
            "count" => {
                let v = match value {
                    "exact" => PreferCount::Exact,
                    "planned" => PreferCount::Planned,
                    _ => PreferCount::Estimated,
                };
                self.count = self.count.or(Some(v));
            }
            "resolution" => {
                let v = if value == "merge-duplicates" {
                    PreferResolution::MergeDuplicates
                } else {
                    PreferResolution::IgnoreDuplicates
                };
                self.resolution = self.resolution.or(Some(v));
            }
            "missing" => {
                let v = if value == "default" {
                    PreferMissing::Default
                } else {
                    PreferMissing::Null
                };
                self.missing = self.missing.or(Some(v));
            }
            "handling" => {
                let v = if value == "strict" {
                    PreferHandling::Strict
                } else {
                    PreferHandling::Lenient
                };
                self.handling = self.handling.or(Some(v));
            }
            "tx" => {
                let v = if value == "commit" {
                    PreferTransaction::Commit
                } else {
                    PreferTransaction::Rollback
                };
                self.transaction = self.transaction.or(Some(v));
            }
            _ => self.single_object_params = true,
        }
    }
}
