//! Splits a script into statements at top-level semicolons, leaving semicolons inside quotes,
//! dollar-quoted bodies and comments alone, so `magflock sql` can run several statements on
//! every dialect (prepared statements take one at a time).

/// The statements of `script`, trimmed, empty ones dropped.
pub fn split(script: &str) -> Vec<String> {
    let bytes = script.as_bytes();
    let mut statements = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == quote {
                        // A doubled quote is an escaped quote inside the literal.
                        if bytes.get(i + 1) == Some(&quote) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'$' => {
                // PostgreSQL dollar quoting: $tag$ ... $tag$
                let tag_end = script[i + 1..].find('$').map(|p| i + 1 + p);
                if let Some(end) = tag_end {
                    let tag = &script[i..=end];
                    let is_tag = tag[1..tag.len() - 1]
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_');
                    if is_tag && let Some(close) = script[end + 1..].find(tag) {
                        i = end + 1 + close + tag.len() - 1;
                    }
                }
            }
            b';' => {
                statements.push(script[start..i].trim().to_owned());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    statements.push(script[start.min(script.len())..].trim().to_owned());
    statements.retain(|s| !s.is_empty());
    statements
}

/// Whether a statement returns rows to print.
pub fn returns_rows(statement: &str) -> bool {
    let lower = statement.trim_start().to_ascii_lowercase();
    [
        "select", "with", "show", "pragma", "explain", "values", "describe", "table ",
    ]
    .iter()
    .any(|k| lower.starts_with(k))
        || lower.contains(" returning ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(script: &str, expected: &[&str]) {
        assert_eq!(split(script), expected, "{script}");
    }

    #[test]
    fn splits_only_at_top_level_semicolons() {
        check(
            "create table a (x int); insert into a values (1);",
            &["create table a (x int)", "insert into a values (1)"],
        );
        check(
            "insert into t values ('a;b'); select 1",
            &["insert into t values ('a;b')", "select 1"],
        );
        check(
            "insert into t values ('it''s; fine')",
            &["insert into t values ('it''s; fine')"],
        );
        check(
            "select 1 -- ; not here\n; select 2",
            &["select 1 -- ; not here", "select 2"],
        );
        check("select /* ; */ 1", &["select /* ; */ 1"]);
        check(
            "create function f() returns int as $$ begin return 1; end $$ language plpgsql; select f()",
            &[
                "create function f() returns int as $$ begin return 1; end $$ language plpgsql",
                "select f()",
            ],
        );
        check("  ;  ; ", &[]);
        check("select 'unterminated; ", &["select 'unterminated;"]);
    }

    #[test]
    fn knows_which_statements_return_rows() {
        assert!(returns_rows("SELECT * FROM t"));
        assert!(returns_rows("  with x as (select 1) select * from x"));
        assert!(returns_rows("insert into t (a) values (1) returning id"));
        assert!(!returns_rows("insert into t (a) values (1)"));
        assert!(!returns_rows("create table t (a int)"));
    }
}
