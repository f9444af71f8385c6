//! Dotted topics (`auth.login.failed`) and the subscription patterns that match them.
//!
//! Rules: a topic is one or more non-empty segments of `[A-Za-z0-9_-]` (plus `:` for table
//! names) joined by dots. In a pattern, `*` as a middle segment matches exactly one segment;
//! `*` as the last segment matches one or more segments, so `auth.*` receives
//! `auth.login` and `auth.login.failed` alike. A lone `*` matches every topic.

use crate::{Error, Result};

/// Checks that `topic` is a concrete topic (no wildcards).
pub fn validate_topic(topic: &str) -> Result<()> {
    check_segments(topic, false)
}

fn check_segments(text: &str, allow_wildcard: bool) -> Result<()> {
    let invalid = |reason| Error::InvalidTopic {
        topic: text.to_owned(),
        reason,
    };
    if text.is_empty() {
        return Err(invalid("it is empty"));
    }
    for segment in text.split('.') {
        if segment.is_empty() {
            return Err(invalid(
                "it has an empty segment (two dots, or a dot at an end)",
            ));
        }
        if segment == "*" {
            if allow_wildcard {
                continue;
            }
            return Err(invalid(
                "wildcards are for subscriptions, not for publishing",
            ));
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':'))
        {
            return Err(invalid(
                "segments may hold only letters, digits, '_', '-' and ':'",
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(Box<str>),
    One,
    Rest,
}

/// A compiled subscription pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    source: Box<str>,
    segments: Box<[Segment]>,
}

impl Pattern {
    /// Compiles a pattern, rejecting malformed ones.
    pub fn parse(pattern: &str) -> Result<Pattern> {
        check_segments(pattern, true)?;
        let parts: Vec<&str> = pattern.split('.').collect();
        let last = parts.len() - 1;
        let segments = parts
            .iter()
            .enumerate()
            .map(|(i, s)| match (*s, i == last) {
                ("*", true) => Segment::Rest,
                ("*", false) => Segment::One,
                (lit, _) => Segment::Literal(lit.into()),
            })
            .collect();
        Ok(Pattern {
            source: pattern.into(),
            segments,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `topic` matches. Allocation-free: this runs for every subscriber on every publish.
    pub fn matches(&self, topic: &str) -> bool {
        let mut parts = topic.split('.');
        for segment in self.segments.iter() {
            match segment {
                Segment::Rest => return parts.next().is_some(),
                Segment::One => {
                    if parts.next().is_none() {
                        return false;
                    }
                }
                Segment::Literal(lit) => {
                    if parts.next() != Some(&**lit) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pattern: &str, topic: &str, expected: bool) {
        let p = Pattern::parse(pattern).expect("valid pattern");
        assert_eq!(p.matches(topic), expected, "{pattern} vs {topic}");
    }

    #[test]
    fn wildcard_matching() {
        check("auth.login.failed", "auth.login.failed", true);
        check("auth.login.failed", "auth.login", false);
        check("auth.login", "auth.login.failed", false);
        check("auth.*", "auth.login", true);
        check("auth.*", "auth.login.failed", true);
        check("auth.*", "auth", false);
        check("auth.*", "authx.login", false);
        check("*.login.failed", "auth.login.failed", true);
        check("*.login.failed", "auth.x.login.failed", false);
        check("table.*.changed", "table.orders.changed", true);
        check("table.*.changed", "table.orders.deleted", false);
        check("*", "anything.at.all", true);
        check("*", "one", true);
    }

    #[test]
    fn malformed_topics_and_patterns_are_rejected() {
        for bad in ["", "a..b", ".a", "a.", "a b", "a.*"] {
            assert!(
                validate_topic(bad).is_err(),
                "{bad:?} should be rejected as a topic"
            );
        }
        for bad in ["", "a..*", "a.b c", "ü.x"] {
            assert!(
                Pattern::parse(bad).is_err(),
                "{bad:?} should be rejected as a pattern"
            );
        }
        assert!(validate_topic("table.public:orders.changed").is_ok());
    }
}
