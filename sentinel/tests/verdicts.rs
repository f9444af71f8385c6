//! Data-driven verdict cases: payload in, attack or not out, through one `check` helper.

// Tests unwrap freely: a panic with the value is the clearest failure.
#![allow(clippy::unwrap_used)]

use sentinel::SqlGuard;

const ATTACK: bool = true;
const BENIGN: bool = false;

#[track_caller]
fn check(input: &str, expected: bool) {
    let verdict = SqlGuard::new().inspect(input);
    assert_eq!(
        verdict.attack, expected,
        "input {input:?}: expected attack={expected}, got {verdict:?}"
    );
    assert!((0.0..=1.0).contains(&verdict.confidence));
    if expected {
        assert!(verdict.confidence >= 0.5, "{verdict:?}");
        assert!(!verdict.evidence.is_empty());
    } else {
        assert!(verdict.confidence < 0.5, "{verdict:?}");
    }
}

#[test]
fn tautologies() {
    check("1' OR '1'='1", ATTACK);
    check("' or 1=1--", ATTACK);
    check("admin' or 'a'='a", ATTACK);
    check("\" or \"\"=\"", ATTACK);
    check("1 or 1=1", ATTACK);
    check("1) or (1=1", ATTACK);
    check("') or ('x'='x", ATTACK);
    check("' or true--", ATTACK);
    check("-1 or true", ATTACK);
    check("' || 1=1#", ATTACK);
    check("'='", ATTACK);
    check("' or not 1=2 -- -", ATTACK);
}

#[test]
fn union_based() {
    check("1 UNION SELECT password FROM users--", ATTACK);
    check("' union all select null,null,null--", ATTACK);
    check("-1 union select @@version,2", ATTACK);
    check(
        "1' union select table_name from information_schema.tables#",
        ATTACK,
    );
    check("') union (select username, password from users)--", ATTACK);
    check("0 union select banner,null from v$version--", ATTACK);
    check("' union select top 1 name from sysobjects--", ATTACK);
    check("1 union select sql from sqlite_master", ATTACK);
}

#[test]
fn error_based() {
    check("' and extractvalue(1,concat(0x7e,version()))--", ATTACK);
    check("1 and updatexml(1,concat(0x7e,user()),1)", ATTACK);
    check("' and 1=convert(int,@@version)--", ATTACK);
    check("1 and 1=cast(version() as int)", ATTACK);
    check(
        "' and 1=utl_inaddr.get_host_name((select user from dual))--",
        ATTACK,
    );
    check(
        "' and 1=ctxsys.drithsx.sn(1,(select user from dual))--",
        ATTACK,
    );
}

#[test]
fn blind() {
    check("1 and 1=2", ATTACK);
    check("' and substring(version(),1,1)='5", ATTACK);
    check(
        "1 and ascii(substr((select password from users limit 1),1,1))>64",
        ATTACK,
    );
    check("' and exists(select * from users)--", ATTACK);
    check("' and sleep(5)--", ATTACK);
    check("1 and benchmark(5000000,md5(1))", ATTACK);
    check("'; waitfor delay '0:0:5'--", ATTACK);
    check("1; select pg_sleep(5)", ATTACK);
    check("' || pg_sleep(10)--", ATTACK);
    check("1 and 1=dbms_pipe.receive_message('a',5)", ATTACK);
    check("if(now()=sysdate(),sleep(3),0)", ATTACK);
    check("' and 1=randomblob(500000000)--", ATTACK);
}

#[test]
fn stacked_and_truncation() {
    check("'; drop table users--", ATTACK);
    check("1; delete from orders", ATTACK);
    check("'; exec master..xp_cmdshell 'whoami'--", ATTACK);
    check("1'; shutdown--", ATTACK);
    check("'; insert into users values('x','y')--", ATTACK);
    check("'; update users set role='admin' where id=1--", ATTACK);
    check("admin'--", ATTACK);
    check("admin'#", ATTACK);
    check("admin')/*", ATTACK);
    check("' into outfile '/var/www/s.php'--", ATTACK);
}

#[test]
fn encoded_and_obfuscated() {
    check("1%27%20OR%20%271%27%3D%271", ATTACK);
    check("1%2527%2520OR%2520%25271%2527%253D%25271", ATTACK);
    check("1'+OR+'1'='1", ATTACK);
    check("1 UN/**/ION SEL/**/ECT password FROM users", ATTACK);
    check("1/**/union/**/select/**/1,2", ATTACK);
    check("1 /*!50000UNION*/ /*!SELECT*/ 1,2--", ATTACK);
    check("1&#39; or &#39;1&#39;=&#39;1", ATTACK);
    check("%u0027 or 1=1--", ATTACK);
    check("\\u0027 or 1=1--", ATTACK);
    check("ＵＮＩＯＮ ＳＥＬＥＣＴ", BENIGN); // no breakout: nothing precedes it
    check("1 ＵＮＩＯＮ ＳＥＬＥＣＴ 1,2", ATTACK);
    check("1'\tOR\n1=1--", ATTACK);
    check("' or 'a'=0x61--", ATTACK);
    check("1 union select char(97,100,109,105,110)", ATTACK);
}

#[test]
fn names_and_prose() {
    check("O'Brien", BENIGN);
    check("D'Angelo", BENIGN);
    check("Ng'ang'a", BENIGN);
    check("Dell'Acqua and O'Neill", BENIGN);
    check("I'll select the union option and drop the rest", BENIGN);
    check("Students' and teachers' votes", BENIGN);
    check("Parents' or guardians' consent required", BENIGN);
    check("Don't drop it -- the screen cracks", BENIGN);
    check("It's 5' 10\" tall", BENIGN);
    check("l'or et l'argent", BENIGN);
    check("rock 'n' roll or jazz?", BENIGN);
    check("Union Select Committee meets today", BENIGN);
    check("the workers' union select their leaders", BENIGN);
    check("5 or 6", BENIGN);
    check("3 and 4", BENIGN);
    check("10/10; select this one", BENIGN);
    check("#1 fan", BENIGN);
    check("C# and F#", BENIGN);
}

#[test]
fn sql_and_code_in_prose() {
    check(
        "How do I write SELECT * FROM users WHERE name = 'O''Brien'?",
        BENIGN,
    );
    check(
        "Why does `DELETE FROM orders WHERE id = 5;` not work?",
        BENIGN,
    );
    check(
        "SELECT id, name FROM users WHERE active = true ORDER BY name;",
        BENIGN,
    );
    check("const q = \"SELECT * FROM t WHERE id = \" + id;", BENIGN);
    check("x = 'a' if cond else 'b'", BENIGN);
    check("time.sleep(5)", BENIGN);
    check("if (a == 1 || b == 2) { return 0; }", BENIGN);
    check("What's the difference between UNION and UNION ALL?", BENIGN);
}

#[test]
fn structured_values() {
    check("o'brien@example.com", BENIGN);
    check("https://example.com/search?q=select+union&page=2", BENIGN);
    check(
        "{\"name\":\"O'Brien\",\"tags\":[\"sql\",\"union\"]}",
        BENIGN,
    );
    check("{\"or\":[{\"age\":{\"gt\":18}}]}", BENIGN);
    check("eq.5", BENIGN);
    check("in.(1,2,3)", BENIGN);
    check("or=(a.eq.1,b.gt.2)", BENIGN);
    check("cs.{a,b}", BENIGN);
    check("ilike.*O'Brien*", BENIGN);
    check("select=id,name,orders(id,total)", BENIGN);
    check("2024-01-31T10:00:00Z", BENIGN);
    check("550e8400-e29b-41d4-a716-446655440000", BENIGN);
    check("-42", BENIGN);
    check("$1,299.99", BENIGN);
    check("#ff0000", BENIGN);
    check("", BENIGN);
    check("こんにちは、テーブルを選択してください", BENIGN);
    check("C'est l'été, et j'ai faim", BENIGN);
}

/// Layer 1 alone, so the rules themselves are tested and not the model behind them.
#[track_caller]
fn check_layer1(input: &str, expected: bool) {
    let verdict = SqlGuard::layer1_only().inspect(input);
    assert_eq!(
        verdict.attack, expected,
        "input {input:?}: expected attack={expected} from layer 1, got {verdict:?}"
    );
}

/// Shapes found missing by the external corpus (sqlmap's payloads) and the hand-written set.
#[test]
fn sqlmap_boundaries_and_numeric_payloads() {
    // Closing a dollar quote, a backtick identifier or a block comment instead of a quote.
    check_layer1("-2811$$ OR 5104=5104-- -", ATTACK);
    check_layer1("test` WHERE 3166=3166 AND 3166=3166#", ATTACK);
    check_layer1("test*/ ,IIF(2508=2508,test,1/0)/*", ATTACK);
    check_layer1("admin*/ UNION SELECT 1105,1105#", ATTACK);
    // Literal comparisons where only injected SQL puts them.
    check_layer1("ELT(6820=6820,1)", ATTACK);
    check_layer1("MAKE_SET(5323=8435,5323)", ATTACK);
    check_layer1("(2227=2227)*2227", ATTACK);
    check_layer1("(CASE WHEN 7120=2644 THEN 7120 ELSE NULL END)", ATTACK);
    check_layer1(
        "admin' ,(CASE WHEN 1402=1402 THEN 1 ELSE NULL END)-- qUzw",
        ATTACK,
    );
    // Tautologies after `where` and `having`; functions sqlmap calls.
    check_layer1("1) AS QxWv WHERE 8440=8440 OR NOT 8440=7583-- QxWv", ATTACK);
    check_layer1("' group by id having 1=1--", ATTACK);
    check_layer1(
        "admin') AND UNICODE(SUBSTRING((SELECT TOP 1 name FROM master..sysdatabases),4,1))>64-- -",
        ATTACK,
    );
    check_layer1("' procedure analyse()--", ATTACK);
    check_layer1("'; grant all privileges on *.* to 'eve'@'%'--", ATTACK);
    // Arithmetic on the empty string, only when the breakout string is one word.
    check_layer1("'-'", ATTACK);
    check_layer1("' div 0 -- ", ATTACK);
    check_layer1(
        "Join two or more pathname components, inserting '/' as needed.",
        BENIGN,
    );
    check_layer1(
        "The unary \"~\" (invert) operator yields the bitwise inversion.",
        BENIGN,
    );
    // Markdown and prose with backticks and `$$` stay benign.
    check_layer1("use `git log` and then `git show` to compare", BENIGN);
    check_layer1("prices in $$ and `code`", BENIGN);
    check_layer1("(3 + 4) * 2", BENIGN);
}

/// A value that leaves the other quote open cannot run in that slot: prose quoting an attack.
#[test]
fn quoted_attacks_in_prose() {
    check(
        "My teacher says never write \"' OR 1=1\" in a login form, why?",
        BENIGN,
    );
    // The same payload that closes what it opens, or comments out the rest, is still caught.
    check("x' OR 1=1 -- \"", ATTACK);
    check("x' OR \"a\"=\"a", ATTACK);
}
