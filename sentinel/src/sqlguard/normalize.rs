//! Normaliser: undoes the encodings an attacker uses to hide SQL from a pattern matcher
//! (URL, double URL, `%uXXXX`, `\uXXXX`, HTML entities, case, whitespace, fullwidth forms) so
//! that the lexer sees one canonical spelling of a value.
//!
//! Everything here returns [`Cow`]: the common benign value (`42`, `alice`) has nothing to
//! decode and is returned borrowed, without allocating.
//!
//! Comment stripping is deliberately *not* part of [`normalize`]: whether `#`, `--` or `/*`
//! starts a comment depends on whether it sits inside a string literal, and that depends on
//! the quote context the value is pasted into. Stripping comments before knowing the context
//! lets `x#' or 1=1 -- ` hide its breakout. [`strip_comments`] therefore takes the context,
//! and the lexer handles comments natively for the same reason.

use std::borrow::Cow;

use super::lexer::{self, Context};

/// Most rounds of URL/entity decoding; real double or triple encoding is caught well before
/// this, and the bound keeps a hostile `%252525...` value from costing more than a few passes.
pub const MAX_DECODE_ROUNDS: usize = 4;

/// Decodes (repeatedly, see [`decode`]) and folds (see [`fold`]) a raw value.
pub fn normalize(input: &str) -> Cow<'_, str> {
    let decoded = decode(input);
    if needs_fold(&decoded) {
        Cow::Owned(fold_owned(&decoded))
    } else {
        decoded
    }
}

/// URL-decodes, unicode-unescapes and HTML-entity-decodes until the value stops changing,
/// at most [`MAX_DECODE_ROUNDS`] times.
///
/// A `+` becomes a space only where it touches a SQL structure word (`1+OR+1=1`,
/// `UNION+SELECT`): there it is form encoding, elsewhere (`'a'+'b'`, `'+sleep(5)+'`) it is
/// the SQL operator and must survive.
pub fn decode(input: &str) -> Cow<'_, str> {
    if !needs_decode(input) {
        return Cow::Borrowed(input);
    }
    let mut current = decode_once(input);
    for _ in 1..MAX_DECODE_ROUNDS {
        if !needs_decode(&current) {
            break;
        }
        let next = decode_once(&current);
        if next == current {
            break;
        }
        current = next;
    }
    Cow::Owned(current)
}

/// Lower-cases ASCII, maps fullwidth forms (`ＳＥＬＥＣＴ`, `＇`) to ASCII, drops zero-width
/// characters and collapses whitespace runs: a run containing a line break becomes `\n`
/// (line comments end there), any other run one space; the ends are trimmed.
pub fn fold(input: &str) -> Cow<'_, str> {
    if needs_fold(input) {
        Cow::Owned(fold_owned(input))
    } else {
        Cow::Borrowed(input)
    }
}

fn needs_decode(s: &str) -> bool {
    s.bytes().any(|b| matches!(b, b'%' | b'&' | b'\\' | b'+'))
}

fn needs_fold(s: &str) -> bool {
    let bytes = s.as_bytes();
    if bytes.first() == Some(&b' ') || bytes.last() == Some(&b' ') {
        return true;
    }
    let mut prev_space = false;
    let mut checked_non_ascii = false;
    for &b in bytes {
        match b {
            b'A'..=b'Z' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0 => return true,
            b' ' if prev_space => return true,
            0x80.. if !checked_non_ascii => {
                if s.chars()
                    .any(|c| !c.is_ascii() && non_ascii_fold(c) != Some(c))
                {
                    return true;
                }
                checked_non_ascii = true;
            }
            _ => {}
        }
        prev_space = b == b' ';
    }
    false
}

/// What a non-ASCII char folds to: `None` drops it, `Some(' ')` is whitespace.
fn non_ascii_fold(c: char) -> Option<char> {
    match c {
        '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}' => None,
        '\u{a0}' | '\u{1680}' | '\u{2000}'..='\u{200a}' | '\u{2028}' | '\u{2029}' => Some(' '),
        '\u{202f}' | '\u{205f}' | '\u{3000}' | '\u{85}' => Some(' '),
        '\u{ff01}'..='\u{ff5e}' => {
            let ascii = char::from_u32(c as u32 - 0xff01 + 0x21).unwrap_or(c);
            Some(ascii.to_ascii_lowercase())
        }
        _ => Some(c),
    }
}

fn fold_owned(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    // Pending whitespace: 0 none, 1 space, 2 newline.
    let mut pending = 0u8;
    for c in input.chars() {
        let c = if c.is_ascii() {
            c.to_ascii_lowercase()
        } else {
            match non_ascii_fold(c) {
                Some(c) => c,
                None => continue,
            }
        };
        match c {
            '\n' | '\r' => pending = 2,
            ' ' | '\t' | '\x0b' | '\x0c' | '\0' => pending = pending.max(1),
            _ => {
                if pending > 0 && !out.is_empty() {
                    out.push(if pending == 2 { '\n' } else { ' ' });
                }
                pending = 0;
                out.push(c);
            }
        }
    }
    out
}

fn hex_val(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

fn hex_at(bytes: &[u8], start: usize, len: usize) -> Option<u32> {
    let digits = bytes.get(start..start + len)?;
    digits
        .iter()
        .try_fold(0u32, |acc, &b| Some(acc * 16 + hex_val(b)?))
}

/// Decodes a `\uXXXX` / `%uXXXX` escape at `i` (pointing at the `\` or `%`), joining a UTF-16
/// surrogate pair when one follows. Returns the char and the bytes consumed.
fn unicode_escape(bytes: &[u8], i: usize) -> Option<(char, usize)> {
    if !matches!(bytes.get(i + 1), Some(b'u' | b'U')) {
        return None;
    }
    let unit = hex_at(bytes, i + 2, 4)?;
    if (0xd800..0xdc00).contains(&unit) {
        let lead = bytes.get(i + 6).copied();
        if matches!(lead, Some(b'\\' | b'%'))
            && matches!(bytes.get(i + 7), Some(b'u' | b'U'))
            && let Some(low) = hex_at(bytes, i + 8, 4).filter(|l| (0xdc00..0xe000).contains(l))
        {
            let cp = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
            return Some((char::from_u32(cp).unwrap_or('\u{fffd}'), 12));
        }
    }
    Some((char::from_u32(unit).unwrap_or('\u{fffd}'), 6))
}

fn named_entity(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "lpar" => '(',
        "rpar" => ')',
        "comma" => ',',
        "semi" => ';',
        "colon" => ':',
        "equals" => '=',
        "num" => '#',
        "percnt" => '%',
        "plus" => '+',
        "minus" => '-',
        "ast" => '*',
        "sol" => '/',
        "bsol" => '\\',
        "excl" => '!',
        "period" => '.',
        "lowbar" => '_',
        "grave" => '`',
        "verbar" | "vert" => '|',
        "tab" => '\t',
        "newline" => '\n',
        _ => return None,
    })
}

/// Decodes an HTML entity at `i` (pointing at `&`). Numeric entities may omit the `;`, as
/// browsers accept them that way.
fn html_entity(bytes: &[u8], i: usize) -> Option<(char, usize)> {
    let rest = bytes.get(i + 1..)?;
    if rest.first() == Some(&b'#') {
        let (radix, start) = match rest.get(1) {
            Some(b'x' | b'X') => (16, 2),
            _ => (10, 1),
        };
        let digits = rest[start..]
            .iter()
            .take_while(|b| (**b as char).is_digit(radix))
            .count();
        if digits == 0 || digits > 7 {
            return None;
        }
        let text = std::str::from_utf8(&rest[start..start + digits]).ok()?;
        let cp = u32::from_str_radix(text, radix).ok()?;
        let semi = usize::from(rest.get(start + digits) == Some(&b';'));
        let c = char::from_u32(cp).unwrap_or('\u{fffd}');
        return Some((c, 1 + start + digits + semi));
    }
    let len = rest
        .iter()
        .take(8)
        .take_while(|b| b.is_ascii_alphabetic())
        .count();
    if len == 0 || rest.get(len) != Some(&b';') {
        return None;
    }
    let name = std::str::from_utf8(&rest[..len]).ok()?;
    let c = named_entity(&name.to_ascii_lowercase())?;
    Some((c, len + 2))
}

/// Words next to which a `+` is form-encoded whitespace rather than the SQL operator.
fn is_structure_word(word: &[u8]) -> bool {
    const WORDS: &[&str] = &[
        "all", "alter", "and", "attach", "copy", "between", "by", "case", "create", "declare",
        "delay", "delete", "distinct", "drop", "else", "end", "exec", "execute", "exists", "false",
        "from", "group", "having", "in", "insert", "into", "is", "like", "limit", "not", "null",
        "or", "order", "select", "set", "shutdown", "table", "then", "top", "true", "truncate",
        "union", "update", "values", "waitfor", "when", "where", "xor",
    ];
    word.len() <= 8
        && WORDS
            .iter()
            .any(|w| w.as_bytes().eq_ignore_ascii_case(word))
}

fn plus_is_space(bytes: &[u8], i: usize) -> bool {
    let left_start = bytes[..i]
        .iter()
        .rposition(|b| !b.is_ascii_alphabetic())
        .map_or(0, |p| p + 1);
    let right_end = bytes[i + 1..]
        .iter()
        .position(|b| !b.is_ascii_alphabetic())
        .map_or(bytes.len(), |p| i + 1 + p);
    is_structure_word(&bytes[left_start..i]) || is_structure_word(&bytes[i + 1..right_end])
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

fn decode_once(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                if let Some(v) = hex_at(bytes, i + 1, 2) {
                    out.push(v as u8);
                    i += 3;
                    continue;
                }
                if let Some((c, used)) = unicode_escape(bytes, i) {
                    push_char(&mut out, c);
                    i += used;
                    continue;
                }
            }
            b'\\' => {
                if let Some((c, used)) = unicode_escape(bytes, i) {
                    push_char(&mut out, c);
                    i += used;
                    continue;
                }
                if matches!(bytes.get(i + 1), Some(b'x'))
                    && let Some(v) = hex_at(bytes, i + 2, 2).filter(|v| *v < 0x80)
                {
                    out.push(v as u8);
                    i += 4;
                    continue;
                }
            }
            b'&' => {
                if let Some((c, used)) = html_entity(bytes, i) {
                    push_char(&mut out, c);
                    i += used;
                    continue;
                }
            }
            b'+' if plus_is_space(bytes, i) => {
                out.push(b' ');
                i += 1;
                continue;
            }
            _ => {}
        }
        out.push(b);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Removes SQL comments from `input` as the database would see them when the value is
/// pasted into `context`: `/* */` and `/*!50000 ... */` (whose content MySQL executes, so it
/// is kept), `-- ` and `#` to the end of the line. Quote characters are tracked so that a
/// comment opener inside a string literal is left alone. An empty comment glued between two
/// halves of a keyword (`UN/**/ION`) joins them; any other comment becomes a space.
pub fn strip_comments(input: &str, context: Context) -> Cow<'_, str> {
    let bytes = input.as_bytes();
    if !bytes.iter().any(|b| matches!(b, b'/' | b'-' | b'#')) {
        return Cow::Borrowed(input);
    }
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut quote = context.opening_quote();
    let mut in_versioned = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(q) = quote {
            out.push(b);
            if b == q {
                if bytes.get(i + 1) == Some(&q) {
                    out.push(q);
                    i += 1;
                } else {
                    quote = None;
                }
            }
            i += 1;
            continue;
        }
        match b {
            b'\'' | b'"' | b'`' => {
                quote = Some(b);
                out.push(b);
                i += 1;
            }
            b'*' if in_versioned && bytes.get(i + 1) == Some(&b'/') => {
                in_versioned = false;
                out.push(b' ');
                i += 2;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                if bytes.get(i + 2) == Some(&b'!') {
                    in_versioned = true;
                    i += 3;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                    out.push(b' ');
                    continue;
                }
                let end = find(bytes, i + 2, b"*/").map_or(bytes.len(), |e| e + 2);
                let joined = joins_keyword(&out, &bytes[end..]);
                if !joined {
                    out.push(b' ');
                }
                i = end;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => i = line_end(bytes, i),
            b'#' => i = line_end(bytes, i),
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn line_end(bytes: &[u8], from: usize) -> usize {
    bytes[from..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(bytes.len(), |p| from + p)
}

/// True when the word ending `before` and the word starting `after` form a keyword together.
fn joins_keyword(before: &[u8], after: &[u8]) -> bool {
    let left = before
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    let right = after
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    if left == 0 || right == 0 || left + right > 32 {
        return false;
    }
    let mut buf = [0u8; 32];
    buf[..left].copy_from_slice(&before[before.len() - left..]);
    buf[left..left + right].copy_from_slice(&after[..right]);
    std::str::from_utf8(&buf[..left + right]).is_ok_and(|w| lexer::lookup(w).is_some())
}
