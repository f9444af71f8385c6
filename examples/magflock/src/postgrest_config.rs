//! Reading a PostgREST configuration file, for `magflock start --postgrest-config FILE`.
//!
//! Someone moving from PostgREST should be able to point magflock at the file they already
//! have. The format is the one PostgREST reads (the `configurator` syntax): one
//! `key = value` per line, values written as `"quoted strings"` (with `\"`, `\\`, `\n`, `\t`,
//! `\uXXXX` escapes and `$(ENV_VAR)` interpolation), whole numbers or `true`/`false`;
//! `#` starts a comment; keys are letters, digits, `-`, `_` and `.` (`app.settings.name`).
//! `jwt-secret` and `db-uri` may be `"@file"`: the value is read from that file, relative to
//! the configuration file's folder.
//!
//! Parsing never guesses: a malformed line is an error naming its line number and what is
//! wrong. A well-formed key that MagGate cannot honour is collected in
//! [`PostgrestConfig::unsupported`] (unless it holds PostgREST's default, which changes
//! nothing), an unheard-of key in [`PostgrestConfig::unknown`], so that the server prints one
//! warning line ([`PostgrestConfig::warning`]) instead of failing or staying silent.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use maggate::TxEnd;

/// Keys PostgREST knows that MagGate does not honour, with PostgREST's default value
/// (written as text) where setting the key to that default changes nothing.
///
/// `jwt-secret-is-base64` and `openapi-server-proxy-uri` are handled separately: they are
/// typed fields, and listed as unsupported when they ask for something MagGate cannot do.
const UNSUPPORTED: &[(&str, Option<&str>)] = &[
    ("admin-server-host", None),
    ("admin-server-port", None),
    ("db-channel", Some("pgrst")),
    ("db-channel-enabled", Some("true")),
    ("db-config", Some("true")),
    ("db-extra-search-path", Some("public")),
    ("db-hoisted-tx-settings", None),
    ("db-plan-enabled", Some("false")),
    ("db-pool-acquisition-timeout", Some("10")),
    ("db-pool-automatic-recovery", Some("true")),
    ("db-pool-max-idletime", Some("30")),
    ("db-pool-max-lifetime", Some("1800")),
    ("db-pool-timeout", Some("10")),
    ("db-pre-config", None),
    ("db-prepared-statements", Some("true")),
    ("db-root-spec", None),
    ("db-use-legacy-gucs", Some("true")),
    ("jwt-cache-max-lifetime", Some("0")),
    ("jwt-role-claim-key", Some(".role")),
    ("log-level", Some("error")),
    ("log-query", Some("disabled")),
    ("openapi-mode", Some("follow-privileges")),
    ("openapi-security-active", Some("false")),
    ("raw-media-types", Some("")),
    ("role-claim-key", Some(".role")),
    ("server-cors-allowed-origins", None),
    ("server-proxy-uri", None),
    ("server-timing-enabled", Some("false")),
    ("server-trace-header", None),
    ("server-unix-socket", None),
    ("server-unix-socket-mode", Some("660")),
];

/// PostgREST's `server-port` when the file sets only `server-host`.
const DEFAULT_PORT: u16 = 3000;

/// Why a PostgREST configuration file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgrestConfigError {
    /// A line is malformed or a value does not fit its key.
    #[error("{}line {line}: {message}", in_file(file.as_deref()))]
    Line {
        /// The configuration file, when read from one.
        file: Option<PathBuf>,
        /// 1-based line number.
        line: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The configuration file itself could not be read.
    #[error("cannot read PostgREST configuration {}: {source}", path.display())]
    Read {
        /// The file asked for.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
}

fn in_file(file: Option<&Path>) -> String {
    file.map(|f| format!("{} ", f.display()))
        .unwrap_or_default()
}

impl PostgrestConfigError {
    fn line(line: usize, message: impl Into<String>) -> Self {
        PostgrestConfigError::Line {
            file: None,
            line,
            message: message.into(),
        }
    }

    /// The line the error is on, when it is about one line.
    #[cfg(test)]
    pub fn line_number(&self) -> Option<usize> {
        match self {
            PostgrestConfigError::Line { line, .. } => Some(*line),
            PostgrestConfigError::Read { .. } => None,
        }
    }
}

/// A PostgREST configuration, each key MagGate understands as a typed field (`None`: not
/// set in the file).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PostgrestConfig {
    /// `db-uri`: the database URL (`@file` already read).
    pub db_uri: Option<String>,
    /// `db-schemas` (or the older `db-schema`): the exposed schemas, first one the default.
    pub db_schemas: Option<Vec<String>>,
    /// `db-anon-role`: the role of requests without credentials.
    pub db_anon_role: Option<String>,
    /// `db-max-rows` (or the older `max-rows`): cap on the rows one GET returns.
    pub db_max_rows: Option<u64>,
    /// `db-aggregates-enabled`: whether `count()`, `sum()`... are allowed in `select`.
    pub db_aggregates_enabled: Option<bool>,
    /// `db-tx-end`: how transactions end.
    pub db_tx_end: Option<TxEnd>,
    /// `db-pre-request` (or the older `pre-request`): function called before each request.
    pub db_pre_request: Option<String>,
    /// `db-pool`: connections in the pool.
    pub db_pool: Option<u32>,
    /// `jwt-secret`: the HS256 secret, or a JWK/JWKS as JSON text (`@file` already read).
    /// When [`PostgrestConfig::jwt_secret_is_base64`] is true this is the base64 text, not
    /// the key: use [`PostgrestConfig::hs256_secret`].
    pub jwt_secret: Option<String>,
    /// `jwt-aud`: the audience JWTs must name.
    pub jwt_aud: Option<String>,
    /// `jwt-secret-is-base64` (or the older `secret-is-base64`).
    pub jwt_secret_is_base64: bool,
    /// `server-host` as written (`!4`, `*`, an address...); see [`PostgrestConfig::listen`].
    pub server_host: Option<String>,
    /// `server-port`.
    pub server_port: Option<u16>,
    /// `openapi-server-proxy-uri`: the public URL for the OpenAPI document.
    pub openapi_server_proxy_uri: Option<String>,
    /// `app.settings.*`, by the name after `app.settings.`.
    pub app_settings: BTreeMap<String, String>,
    /// Keys PostgREST knows and MagGate ignores, in file order (`app.settings.*` as one).
    pub unsupported: Vec<String>,
    /// Keys neither PostgREST nor MagGate knows (typos, newer PostgREST), in file order.
    pub unknown: Vec<String>,
}

/// Reads and parses the PostgREST configuration file at `path`, resolving `@file`
/// references against its folder. Errors name the file.
pub fn load(path: &Path) -> Result<PostgrestConfig, PostgrestConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| PostgrestConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let base_dir = path.parent().unwrap_or(Path::new(""));
    parse_with(&text, base_dir, &|name| std::env::var(name).ok()).map_err(|e| match e {
        PostgrestConfigError::Line { line, message, .. } => PostgrestConfigError::Line {
            file: Some(path.to_owned()),
            line,
            message,
        },
        other => other,
    })
}

impl PostgrestConfig {
    /// The address to serve on, as `host:port`, from `server-host` and `server-port`;
    /// `None` when the file sets neither (the caller's own default applies).
    ///
    /// PostgREST's special hosts map to wildcard addresses: `!4` and `*4` to `0.0.0.0`,
    /// `*`, `*6` and `!6` to `[::]`. An unset host with a set port gives `127.0.0.1`, not
    /// PostgREST's all-interfaces default, so a port alone never exposes the server; an unset
    /// port with a set host gives PostgREST's 3000. `localhost` becomes `127.0.0.1` and IPv6
    /// addresses get brackets.
    pub fn listen(&self) -> Option<String> {
        if self.server_host.is_none() && self.server_port.is_none() {
            return None;
        }
        let port = self.server_port.unwrap_or(DEFAULT_PORT);
        let host = match self.server_host.as_deref() {
            None | Some("localhost") => "127.0.0.1".to_owned(),
            Some("!4" | "*4") => "0.0.0.0".to_owned(),
            Some("*" | "*6" | "!6") => "[::]".to_owned(),
            Some(h) if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
            Some(h) => h.to_owned(),
        };
        Some(format!("{host}:{port}"))
    }

    /// `db-tx-end`, as MagGate's [`TxEnd`].
    pub fn tx_end(&self) -> Option<TxEnd> {
        self.db_tx_end
    }

    /// The HS256 secret to verify JWTs with: `jwt-secret`, unless it is base64-encoded
    /// (not decoded here; then it is listed as unsupported).
    pub fn hs256_secret(&self) -> Option<&str> {
        if self.jwt_secret_is_base64 {
            None
        } else {
            self.jwt_secret.as_deref()
        }
    }

    /// One line naming the settings magflock ignores, or `None` when it honours them all.
    pub fn warning(&self) -> Option<String> {
        if self.unsupported.is_empty() && self.unknown.is_empty() {
            return None;
        }
        let mut line = String::new();
        if !self.unsupported.is_empty() {
            let _ = write!(
                line,
                "ignored PostgREST settings: {}",
                self.unsupported.join(", ")
            );
        }
        if !self.unknown.is_empty() {
            if !line.is_empty() {
                line.push_str("; ");
            }
            let _ = write!(
                line,
                "unknown settings (ignored): {}",
                self.unknown.join(", ")
            );
        }
        Some(line)
    }

    fn note(list: &mut Vec<String>, key: &str) {
        if !list.iter().any(|k| k == key) {
            list.push(key.to_owned());
        }
    }
}

/// A value as written in the file.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    /// Number text, validated when the key's type is known.
    Number(String),
    Bool(bool),
}

impl Value {
    /// The value as text, for comparing with PostgREST's defaults.
    fn as_text(&self) -> String {
        match self {
            Value::Str(s) | Value::Number(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
        }
    }
}

/// One `key = value` line.
struct Entry {
    line: usize,
    key: String,
    value: Value,
}

/// Environment look-up for `$(VAR)`; a parameter so tests need not touch the process.
type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn parse_with(
    text: &str,
    base_dir: &Path,
    env: Env<'_>,
) -> Result<PostgrestConfig, PostgrestConfigError> {
    let mut config = PostgrestConfig::default();
    // Editors on Windows may start the file with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if let Some(entry) = parse_line(raw, line, env)? {
            apply(&mut config, entry, base_dir)?;
        }
    }
    Ok(config)
}

/// Parses one line: `None` for blank lines and comments.
fn parse_line(raw: &str, line: usize, env: Env<'_>) -> Result<Option<Entry>, PostgrestConfigError> {
    let rest = raw.trim_start();
    if rest.is_empty() || rest.starts_with('#') {
        return Ok(None);
    }
    let key_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(rest.len());
    let key = &rest[..key_len];
    let after_key = rest[key_len..].trim_start();
    if key.is_empty() || !key.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(PostgrestConfigError::line(
            line,
            format!("expected `key = value`, found `{}`", rest.trim_end()),
        ));
    }
    if key == "import" && after_key.starts_with('"') {
        return Err(PostgrestConfigError::line(
            line,
            "`import` is not supported: copy the imported settings into this file",
        ));
    }
    if after_key.starts_with('{') {
        return Err(PostgrestConfigError::line(
            line,
            format!("groups (`{key} {{ ... }}`) are not supported: write `{key}.name = value`"),
        ));
    }
    let Some(after_eq) = after_key.strip_prefix('=') else {
        return Err(PostgrestConfigError::line(
            line,
            format!("missing `=` after `{key}` (write `{key} = value`)"),
        ));
    };
    let after_eq = after_eq.trim_start();
    let (value, rest) = parse_value(after_eq, key, line, env)?;
    let rest = rest.trim_start();
    if !(rest.is_empty() || rest.starts_with('#')) {
        return Err(PostgrestConfigError::line(
            line,
            format!(
                "unexpected text after the value of `{key}`: `{}`",
                rest.trim_end()
            ),
        ));
    }
    Ok(Some(Entry {
        line,
        key: key.to_owned(),
        value,
    }))
}

/// Parses the value at the start of `text`; returns it and what follows.
fn parse_value<'t>(
    text: &'t str,
    key: &str,
    line: usize,
    env: Env<'_>,
) -> Result<(Value, &'t str), PostgrestConfigError> {
    if let Some(body) = text.strip_prefix('"') {
        let (s, rest) = parse_string(body, key, line, env)?;
        return Ok((Value::Str(s), rest));
    }
    let word_len = text
        .find(|c: char| c.is_whitespace() || c == '#')
        .unwrap_or(text.len());
    let (word, rest) = text.split_at(word_len);
    let value = match word {
        "" => {
            return Err(PostgrestConfigError::line(
                line,
                format!("`{key}` has no value (write `{key} = \"...\"`)"),
            ));
        }
        "true" | "on" => Value::Bool(true),
        "false" | "off" => Value::Bool(false),
        w if is_number(w) => Value::Number(w.to_owned()),
        w if w.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') => {
            return Err(PostgrestConfigError::line(
                line,
                format!("`{key}`: `{w}` is not a number"),
            ));
        }
        w => {
            return Err(PostgrestConfigError::line(
                line,
                format!("`{key}`: text values must be in double quotes: `{key} = \"{w}\"`"),
            ));
        }
    };
    Ok((value, rest))
}

/// Whether `w` is a decimal number (`12`, `-3`, `1.5`).
fn is_number(w: &str) -> bool {
    let digits = w.strip_prefix('-').unwrap_or(w);
    let mut parts = digits.splitn(2, '.');
    let whole = parts.next().unwrap_or("");
    let ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    ok(whole) && parts.next().is_none_or(ok)
}

/// Parses a string body after its opening quote: escapes and `$(VAR)`.
fn parse_string<'t>(
    body: &'t str,
    key: &str,
    line: usize,
    env: Env<'_>,
) -> Result<(String, &'t str), PostgrestConfigError> {
    let unterminated = || {
        PostgrestConfigError::line(
            line,
            format!("`{key}`: unterminated string (missing closing `\"`)"),
        )
    };
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &body[i + 1..])),
            '\\' => {
                let (_, e) = chars.next().ok_or_else(unterminated)?;
                match e {
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    '/' => out.push('/'),
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'u' => {
                        let hex: String = chars.by_ref().take(4).map(|(_, h)| h).collect();
                        let ch = u32::from_str_radix(&hex, 16)
                            .ok()
                            .filter(|_| hex.len() == 4)
                            .and_then(char::from_u32)
                            .ok_or_else(|| {
                                PostgrestConfigError::line(
                                    line,
                                    format!("`{key}`: `\\u{hex}` is not a valid `\\uXXXX` escape"),
                                )
                            })?;
                        out.push(ch);
                    }
                    other => {
                        return Err(PostgrestConfigError::line(
                            line,
                            format!(
                                "`{key}`: unknown escape `\\{other}` (write `\\\\` for a backslash)"
                            ),
                        ));
                    }
                }
            }
            '$' if body[i + 1..].starts_with('(') => {
                let name_start = i + 2;
                let Some(len) = body[name_start..]
                    .find(')')
                    .filter(|&len| !body[name_start..name_start + len].contains('"'))
                else {
                    return Err(PostgrestConfigError::line(
                        line,
                        format!("`{key}`: `$(` without a closing `)`"),
                    ));
                };
                let name = &body[name_start..name_start + len];
                let value = env(name).ok_or_else(|| {
                    PostgrestConfigError::line(
                        line,
                        format!("`{key}`: environment variable `{name}` is not set"),
                    )
                })?;
                out.push_str(&value);
                // Skip the name and the closing parenthesis.
                for _ in 0..name.chars().count() + 2 {
                    chars.next();
                }
            }
            c => out.push(c),
        }
    }
    Err(unterminated())
}

/// Stores one entry in its typed field, or in `unsupported`/`unknown`. A later line for the
/// same key overrides an earlier one, as in PostgREST.
fn apply(
    config: &mut PostgrestConfig,
    entry: Entry,
    base_dir: &Path,
) -> Result<(), PostgrestConfigError> {
    let Entry { line, key, value } = entry;
    let k = key.as_str();
    match k {
        "db-uri" => {
            config.db_uri = Some(read_reference(string(k, value, line)?, k, base_dir, line)?)
        }
        "db-schemas" | "db-schema" => {
            let list: Vec<String> = string(k, value, line)?
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            if list.is_empty() {
                return Err(PostgrestConfigError::line(
                    line,
                    format!("`{k}` names no schema (write `{k} = \"api\"` or `\"api,public\"`)"),
                ));
            }
            config.db_schemas = Some(list);
        }
        "db-anon-role" => config.db_anon_role = Some(string(k, value, line)?),
        "db-max-rows" | "max-rows" => config.db_max_rows = Some(number(k, value, line)?),
        "db-aggregates-enabled" => config.db_aggregates_enabled = Some(boolean(k, value, line)?),
        "db-tx-end" => config.db_tx_end = Some(tx_end(&string(k, value, line)?, line)?),
        "db-pre-request" | "pre-request" => {
            config.db_pre_request = Some(string(k, value, line)?).filter(|s| !s.is_empty());
        }
        "db-pool" => {
            let size: u32 = number(k, value, line)?;
            if size == 0 {
                return Err(PostgrestConfigError::line(
                    line,
                    "`db-pool` must be at least 1",
                ));
            }
            config.db_pool = Some(size);
        }
        "jwt-secret" => {
            config.jwt_secret = Some(read_reference(string(k, value, line)?, k, base_dir, line)?);
        }
        "jwt-aud" => config.jwt_aud = Some(string(k, value, line)?).filter(|s| !s.is_empty()),
        "jwt-secret-is-base64" | "secret-is-base64" => {
            config.jwt_secret_is_base64 = boolean(k, value, line)?;
            // Decoding would need the base64 crate, which magflock does not depend on.
            if config.jwt_secret_is_base64 {
                PostgrestConfig::note(&mut config.unsupported, "jwt-secret-is-base64");
            } else {
                config.unsupported.retain(|u| u != "jwt-secret-is-base64");
            }
        }
        "server-host" => config.server_host = Some(string(k, value, line)?),
        "server-port" => config.server_port = Some(number(k, value, line)?),
        "openapi-server-proxy-uri" => {
            // MagGate's OpenAPI document names its own prefix as the server.
            config.openapi_server_proxy_uri = Some(string(k, value, line)?);
            PostgrestConfig::note(&mut config.unsupported, k);
        }
        _ => {
            if let Some(name) = k.strip_prefix("app.settings.") {
                config.app_settings.insert(name.to_owned(), value.as_text());
                // MagGate does not set `app.settings.*` on the database connection.
                PostgrestConfig::note(&mut config.unsupported, "app.settings.*");
            } else if let Some((_, default)) = UNSUPPORTED.iter().find(|(name, _)| *name == k) {
                if default.is_none_or(|d| d != value.as_text()) {
                    PostgrestConfig::note(&mut config.unsupported, k);
                } else {
                    config.unsupported.retain(|u| u != k);
                }
            } else {
                tracing::debug!(key = k, line, "unknown PostgREST setting");
                PostgrestConfig::note(&mut config.unknown, k);
            }
        }
    }
    Ok(())
}

fn string(key: &str, value: Value, line: usize) -> Result<String, PostgrestConfigError> {
    match value {
        Value::Str(s) => Ok(s),
        other => Err(PostgrestConfigError::line(
            line,
            format!(
                "`{key}` must be a quoted string, found {} (write `{key} = \"{}\"`)",
                other.kind(),
                other.as_text()
            ),
        )),
    }
}

/// A whole number, written bare or quoted (PostgREST accepts both).
fn number<T: std::str::FromStr>(
    key: &str,
    value: Value,
    line: usize,
) -> Result<T, PostgrestConfigError> {
    let text = match &value {
        Value::Number(s) | Value::Str(s) => s.trim(),
        Value::Bool(_) => "",
    };
    text.parse().map_err(|_| {
        PostgrestConfigError::line(
            line,
            format!(
                "`{key}` must be a whole number in range, found `{}`",
                value.as_text()
            ),
        )
    })
}

/// A boolean, written bare or quoted (PostgREST accepts both).
fn boolean(key: &str, value: Value, line: usize) -> Result<bool, PostgrestConfigError> {
    match &value {
        Value::Bool(b) => Ok(*b),
        Value::Str(s) if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("on") => Ok(true),
        Value::Str(s) if s.eq_ignore_ascii_case("false") || s.eq_ignore_ascii_case("off") => {
            Ok(false)
        }
        other => Err(PostgrestConfigError::line(
            line,
            format!("`{key}` must be true or false, found `{}`", other.as_text()),
        )),
    }
}

fn tx_end(text: &str, line: usize) -> Result<TxEnd, PostgrestConfigError> {
    match text {
        "commit" => Ok(TxEnd::Commit),
        "commit-allow-override" => Ok(TxEnd::CommitAllowOverride),
        "rollback" => Ok(TxEnd::Rollback),
        "rollback-allow-override" => Ok(TxEnd::RollbackAllowOverride),
        other => Err(PostgrestConfigError::line(
            line,
            format!(
                "`db-tx-end` must be commit, commit-allow-override, rollback or \
                 rollback-allow-override, found `{other}`"
            ),
        )),
    }
}

/// Resolves PostgREST's `@file` form: the value is the file's contents (one trailing line
/// break dropped), the path relative to `base_dir`.
fn read_reference(
    value: String,
    key: &str,
    base_dir: &Path,
    line: usize,
) -> Result<String, PostgrestConfigError> {
    let Some(file) = value.strip_prefix('@') else {
        return Ok(value);
    };
    let path = base_dir.join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        PostgrestConfigError::line(
            line,
            format!("`{key}`: cannot read {}: {e}", path.display()),
        )
    })?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse_ok(text: &str) -> PostgrestConfig {
        match parse_with(text, Path::new(""), &no_env) {
            Ok(c) => c,
            Err(e) => panic!("{text:?} should parse: {e}"),
        }
    }

    /// The error line number and message for `text`.
    fn parse_err(text: &str) -> (usize, String) {
        match parse_with(text, Path::new(""), &no_env) {
            Ok(c) => panic!("{text:?} should fail, parsed {c:?}"),
            Err(e) => (e.line_number().unwrap_or(0), e.to_string()),
        }
    }

    /// In the style of PostgREST's documented example configuration.
    const EXAMPLE: &str = r#"
# postgrest.conf

# The standard connection URI format, documented at
# https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING
db-uri       = "postgres://authenticator:mysecretpassword@localhost:5432/postgres"

# The database schemas to expose to REST clients
db-schemas   = "api, public"

# The database role to use when no client authentication is provided.
# Should differ from authenticator
db-anon-role = "web_anon"

# The secret to verify the JWT for authenticated requests with.
# Needs to be 32 characters minimum.
jwt-secret           = "reallyreallyreallyreallyverysafe"
jwt-secret-is-base64 = false
jwt-aud              = "https://example.org"

db-max-rows = 1000
db-pool = 10
db-aggregates-enabled = true
db-tx-end = "commit-allow-override"
db-pre-request = "api.check_request"
db-channel-enabled = true      # the default: no warning

# Port the postgrest process is listening on for http requests
server-host = "*4"
server-port = 3000
"#;

    #[test]
    fn reads_a_realistic_postgrest_config() {
        let c = parse_ok(EXAMPLE);
        assert_eq!(
            c.db_uri.as_deref(),
            Some("postgres://authenticator:mysecretpassword@localhost:5432/postgres")
        );
        assert_eq!(
            c.db_schemas,
            Some(vec!["api".to_owned(), "public".to_owned()])
        );
        assert_eq!(c.db_anon_role.as_deref(), Some("web_anon"));
        assert_eq!(c.hs256_secret(), Some("reallyreallyreallyreallyverysafe"));
        assert_eq!(c.jwt_aud.as_deref(), Some("https://example.org"));
        assert_eq!(c.db_max_rows, Some(1000));
        assert_eq!(c.db_pool, Some(10));
        assert_eq!(c.db_aggregates_enabled, Some(true));
        assert_eq!(c.tx_end(), Some(TxEnd::CommitAllowOverride));
        assert_eq!(c.db_pre_request.as_deref(), Some("api.check_request"));
        assert_eq!(c.listen().as_deref(), Some("0.0.0.0:3000"));
        assert_eq!(c.warning(), None, "{c:?}");
    }

    #[test]
    fn value_kinds_escapes_and_comments() {
        let c = parse_ok(
            "  db-anon-role = \"a \\\"quoted\\\" \\\\ role\\u00e9 # not a comment\" # comment\n\
             db-max-rows=\"25\"\n\
             db-aggregates-enabled = \"false\"\n\
             server-port = 8000 # trailing\n\
             \n\
             # db-pool = 0\n\
             db-pool = 3\n",
        );
        assert_eq!(
            c.db_anon_role.as_deref(),
            Some("a \"quoted\" \\ roleé # not a comment")
        );
        assert_eq!(c.db_max_rows, Some(25));
        assert_eq!(c.db_aggregates_enabled, Some(false));
        assert_eq!(c.server_port, Some(8000));
        assert_eq!(c.db_pool, Some(3));
    }

    #[test]
    fn old_key_names_and_later_lines_win() {
        let c = parse_ok(
            "db-schema = \"api\"\nmax-rows = 5\npre-request = \"f\"\nmax-rows = 7\n\
             secret-is-base64 = false\n",
        );
        assert_eq!(c.db_schemas, Some(vec!["api".to_owned()]));
        assert_eq!(c.db_max_rows, Some(7));
        assert_eq!(c.db_pre_request.as_deref(), Some("f"));
        assert_eq!(c.warning(), None);
    }

    #[test]
    fn environment_interpolation() {
        let env = |name: &str| (name == "PGRST_PASS").then(|| "s3cret".to_owned());
        let c = match parse_with(
            "db-uri = \"postgres://u:$(PGRST_PASS)@h/db\"",
            Path::new(""),
            &env,
        ) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(c.db_uri.as_deref(), Some("postgres://u:s3cret@h/db"));
        let err = parse_with("db-uri = \"a$(b\" # c)", Path::new(""), &env);
        assert!(
            matches!(&err, Err(e) if e.to_string().contains("without a closing")),
            "{err:?}"
        );
        let bom = parse_ok("\u{feff}db-anon-role = \"anon\"\n");
        assert_eq!(bom.db_anon_role.as_deref(), Some("anon"));
        let err = parse_with("\njwt-secret = \"$(MISSING)\"", Path::new(""), &env);
        assert!(
            matches!(&err, Err(e) if e.line_number() == Some(2) && e.to_string().contains("MISSING")),
            "{err:?}"
        );
    }

    #[test]
    fn bad_lines_name_their_line_and_the_problem() {
        let cases: &[(&str, usize, &str)] = &[
            ("db-uri \"postgres://x\"", 1, "missing `=`"),
            ("# ok\n\ndb-anon-role = \"anon", 3, "unterminated string"),
            ("db-max-rows = 12x", 1, "not a number"),
            ("db-max-rows = -1", 1, "whole number"),
            ("server-port = 70000", 1, "whole number"),
            ("db-pool = 0", 1, "at least 1"),
            ("db-anon-role = anon", 1, "double quotes"),
            ("db-anon-role = 5", 1, "quoted string"),
            ("db-aggregates-enabled = \"yes\"", 1, "true or false"),
            ("db-anon-role =", 1, "no value"),
            ("db-anon-role = \"a\" \"b\"", 1, "unexpected text"),
            ("db-schemas = \" , \"", 1, "no schema"),
            ("= \"x\"", 1, "key = value"),
            ("app {\n", 1, "groups"),
            ("import \"other.conf\"", 1, "import"),
            ("jwt-secret = \"\\q\"", 1, "unknown escape"),
            (
                "\n\ndb-tx-end = \"sometimes\"",
                3,
                "commit, commit-allow-override",
            ),
        ];
        for (text, line, needle) in cases {
            let (got_line, message) = parse_err(text);
            assert_eq!(got_line, *line, "{text:?}: {message}");
            assert!(
                message.contains(needle),
                "{text:?}: {message:?} lacks {needle:?}"
            );
            assert!(message.starts_with(&format!("line {line}: ")), "{message}");
        }
    }

    #[test]
    fn tx_end_values() {
        for (text, expected) in [
            ("commit", TxEnd::Commit),
            ("commit-allow-override", TxEnd::CommitAllowOverride),
            ("rollback", TxEnd::Rollback),
            ("rollback-allow-override", TxEnd::RollbackAllowOverride),
        ] {
            let c = parse_ok(&format!("db-tx-end = \"{text}\""));
            assert_eq!(c.tx_end(), Some(expected), "{text}");
        }
        assert_eq!(parse_ok("").tx_end(), None);
    }

    #[test]
    fn unsupported_and_unknown_keys_make_one_warning() {
        let c = parse_ok(
            "db-uri = \"postgres://x\"\n\
             server-unix-socket = \"/tmp/pgrst.sock\"\n\
             db-prepared-statements = false\n\
             db-prepared-statements = true\n\
             log-level = \"info\"\n\
             app.settings.jwt_exp = 3600\n\
             app.settings.name = \"demo\"\n\
             jwt-secret-is-base64 = true\n\
             openapi-server-proxy-uri = \"https://api.example.org\"\n\
             db-shemas = \"typo\"\n",
        );
        assert_eq!(
            c.unsupported,
            [
                "server-unix-socket",
                "log-level",
                "app.settings.*",
                "jwt-secret-is-base64",
                "openapi-server-proxy-uri"
            ]
        );
        assert_eq!(c.unknown, ["db-shemas"]);
        assert_eq!(
            c.app_settings.get("jwt_exp").map(String::as_str),
            Some("3600")
        );
        assert_eq!(c.app_settings.get("name").map(String::as_str), Some("demo"));
        assert_eq!(
            c.openapi_server_proxy_uri.as_deref(),
            Some("https://api.example.org")
        );
        assert_eq!(
            c.warning().as_deref(),
            Some(
                "ignored PostgREST settings: server-unix-socket, log-level, app.settings.*, \
                 jwt-secret-is-base64, openapi-server-proxy-uri; \
                 unknown settings (ignored): db-shemas"
            )
        );
    }

    #[test]
    fn base64_secret_is_not_used_as_the_key() {
        let c = parse_ok(
            "jwt-secret = \"c2VjdXJpdHl0aHJvdWdob2JzY3VyaXR5\"\njwt-secret-is-base64 = true",
        );
        assert!(c.jwt_secret_is_base64);
        assert_eq!(c.hs256_secret(), None);
        assert_eq!(
            c.warning().as_deref(),
            Some("ignored PostgREST settings: jwt-secret-is-base64")
        );
    }

    #[test]
    fn listen_mapping() {
        let listen = |text: &str| parse_ok(text).listen();
        assert_eq!(listen(""), None);
        assert_eq!(
            listen("server-port = 3001"),
            Some("127.0.0.1:3001".to_owned())
        );
        assert_eq!(
            listen("server-host = \"!4\""),
            Some("0.0.0.0:3000".to_owned())
        );
        assert_eq!(
            listen("server-host = \"*4\"\nserver-port = 80"),
            Some("0.0.0.0:80".to_owned())
        );
        assert_eq!(listen("server-host = \"*\""), Some("[::]:3000".to_owned()));
        assert_eq!(listen("server-host = \"!6\""), Some("[::]:3000".to_owned()));
        assert_eq!(listen("server-host = \"*6\""), Some("[::]:3000".to_owned()));
        assert_eq!(
            listen("server-host = \"localhost\""),
            Some("127.0.0.1:3000".to_owned())
        );
        assert_eq!(
            listen("server-host = \"::1\""),
            Some("[::1]:3000".to_owned())
        );
        assert_eq!(
            listen("server-host = \"10.0.0.5\""),
            Some("10.0.0.5:3000".to_owned())
        );
    }

    #[test]
    fn load_reads_at_files_relative_to_the_config() {
        let dir = std::env::temp_dir().join(format!("magflock-pgrst-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("secrets")).unwrap();
        std::fs::write(
            dir.join("secrets/jwt.txt"),
            "reallyreallyreallyreallyverysafe\n",
        )
        .unwrap();
        std::fs::write(dir.join("db.uri"), "postgres://u@h/db\r\n").unwrap();
        let conf = dir.join("postgrest.conf");
        std::fs::write(
            &conf,
            "jwt-secret = \"@secrets/jwt.txt\"\ndb-uri = \"@db.uri\"\n",
        )
        .unwrap();
        let c = load(&conf).unwrap();
        assert_eq!(
            c.jwt_secret.as_deref(),
            Some("reallyreallyreallyreallyverysafe")
        );
        assert_eq!(c.db_uri.as_deref(), Some("postgres://u@h/db"));

        std::fs::write(&conf, "# secret\njwt-secret = \"@missing.txt\"\n").unwrap();
        let err = load(&conf).unwrap_err().to_string();
        assert!(
            err.contains("postgrest.conf line 2: `jwt-secret`: cannot read"),
            "{err}"
        );
        assert!(err.contains("missing.txt"), "{err}");

        let err = load(&dir.join("nope.conf")).unwrap_err();
        assert!(matches!(err, PostgrestConfigError::Read { .. }), "{err:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
