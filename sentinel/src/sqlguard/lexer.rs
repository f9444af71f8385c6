//! SQL lexer for untrusted values: tokenises a value as the database would see it once it is
//! pasted into a query, in each of the places an application pastes values (a bare numeric
//! slot, inside `'...'`, inside `"..."`).
//!
//! It is a streaming iterator that borrows from the input and never allocates. It is
//! deliberately forgiving (an unterminated string or comment is a token, unknown bytes are
//! [`Class::Other`]) because attack payloads are fragments, not statements. The keyword table
//! covers PostgreSQL, MySQL, MSSQL, SQLite and Oracle words that matter to injection.
//!
//! Dialect choices: `''` doubles a quote inside a string (all dialects); a backslash does not
//! escape (standard SQL, PostgreSQL): this makes the lexer see *more* breakouts than MySQL
//! would, which can only add detections. `--` always starts a comment, `#` too (MySQL).

/// Where the application pastes the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Context {
    /// A bare slot, typically numeric: `WHERE id = <value>`.
    Bare,
    /// Inside a single-quoted string: `WHERE name = '<value>'`.
    SingleQuote,
    /// Inside a double-quoted string (MySQL without ANSI quotes): `WHERE name = "<value>"`.
    DoubleQuote,
}

impl Context {
    /// All contexts, in the order the guard checks them.
    pub const ALL: [Context; 3] = [Context::Bare, Context::SingleQuote, Context::DoubleQuote];

    /// The quote already open when the value starts, if any.
    pub const fn opening_quote(self) -> Option<u8> {
        match self {
            Context::Bare => None,
            Context::SingleQuote => Some(b'\''),
            Context::DoubleQuote => Some(b'"'),
        }
    }

    /// Short name used in evidence strings.
    pub const fn name(self) -> &'static str {
        match self {
            Context::Bare => "bare",
            Context::SingleQuote => "single-quote",
            Context::DoubleQuote => "double-quote",
        }
    }
}

/// Token classes, libinjection in spirit; the letters are our own fingerprint alphabet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// String literal (`'abc'`, `N'x'`, `$$x$$`), possibly unterminated: `s`.
    Str,
    /// Number, hex literal, `null`, `true`, `false`: `n`.
    Num,
    /// Other SQL keyword (`from`, `where`, `order by`, `as`...): `k`.
    Keyword,
    /// `select`: `S`.
    Select,
    /// Statement verb that starts a stacked query (`drop`, `exec`, `waitfor`...): `X`.
    Verb,
    /// Set operator: `union`, `intersect`, `except`, `minus`: `U`.
    Union,
    /// Known SQL function followed by `(`: `f`.
    Func,
    /// `and`, `or`, `xor`, `&&`, `||`: `&`.
    Logic,
    /// Arithmetic and other operators, `not`: `o`.
    Op,
    /// Comparison: `=`, `<>`, `like`, `in`, `is`, `between`...: `=`.
    Cmp,
    /// Line comment (`-- `, `#`) or unterminated block comment: `c`.
    Comment,
    /// `(`.
    LParen,
    /// `)`.
    RParen,
    /// `,`.
    Comma,
    /// `;`.
    Semi,
    /// Variable: `@x`, `@@version`, `$1`: `v`.
    Var,
    /// Identifier that is not a known keyword or function: `b`.
    Bare,
    /// Anything else: `?`.
    Other,
}

impl Class {
    /// The fingerprint letter of this class.
    pub const fn code(self) -> u8 {
        match self {
            Class::Str => b's',
            Class::Num => b'n',
            Class::Keyword => b'k',
            Class::Select => b'S',
            Class::Verb => b'X',
            Class::Union => b'U',
            Class::Func => b'f',
            Class::Logic => b'&',
            Class::Op => b'o',
            Class::Cmp => b'=',
            Class::Comment => b'c',
            Class::LParen => b'(',
            Class::RParen => b')',
            Class::Comma => b',',
            Class::Semi => b';',
            Class::Var => b'v',
            Class::Bare => b'b',
            Class::Other => b'?',
        }
    }
}

/// Words the fingerprint stage treats specially; everything else is [`Kw::Other`].
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kw {
    Union,
    All,
    Distinct,
    Select,
    Order,
    Group,
    By,
    Having,
    Limit,
    Into,
    Outfile,
    Drop,
    Delete,
    Update,
    Insert,
    Exec,
    Shutdown,
    Declare,
    Truncate,
    Create,
    Waitfor,
    Delay,
    From,
    Set,
    Copy,
    Attach,
    Grant,
    /// A DDL object word: `table`, `database`, `user`, `procedure`...
    Object,
    As,
    Convert,
    Cast,
    /// An integer type name, for `convert(int, ...)` and `cast(... as int)`.
    IntType,
    Other,
}

/// Risk flags of a keyword-table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Flags(u8);

impl Flags {
    /// No flag.
    pub const NONE: Flags = Flags(0);
    /// A function: the word is [`Class::Func`] only when `(` follows, else [`Class::Bare`].
    pub const FUNC: Flags = Flags(1);
    /// Delays execution: time-based blind injection.
    pub const TIME: Flags = Flags(2);
    /// Raises errors that leak data: error-based injection.
    pub const ERROR: Flags = Flags(4);
    /// Touches files, the network or the OS shell.
    pub const DANGER: Flags = Flags(8);
    /// A catalogue of tables or users: schema enumeration.
    pub const SCHEMA: Flags = Flags(16);
    /// Reveals server identity (`version()`, `user()`, `@@version`).
    pub const INFO: Flags = Flags(32);

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag of `other` is set.
    pub const fn intersects(self, other: Flags) -> bool {
        self.0 & other.0 != 0
    }

    const fn or(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

/// A keyword-table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Class of the word (for [`Flags::FUNC`] words: the class when `(` follows).
    pub class: Class,
    /// Which special word it is.
    pub kw: Kw,
    /// Risk flags.
    pub flags: Flags,
}

/// One token. `text` is the token's source, without the quotes for strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token<'a> {
    /// Token class.
    pub class: Class,
    /// Source text (string content for [`Class::Str`]).
    pub text: &'a str,
    /// Keyword-table entry for words.
    pub entry: Option<Entry>,
    /// For strings and block comments: whether the closing delimiter was seen.
    pub closed: bool,
}

impl Token<'_> {
    /// Which special word this token is, [`Kw::Other`] when none.
    pub fn kw(&self) -> Kw {
        self.entry.map_or(Kw::Other, |e| e.kw)
    }

    /// Risk flags of this token.
    pub fn flags(&self) -> Flags {
        self.entry.map_or(Flags::NONE, |e| e.flags)
    }
}

const F: Flags = Flags::FUNC;
const N: Flags = Flags::NONE;

const fn e(class: Class, kw: Kw, flags: Flags) -> Entry {
    Entry { class, kw, flags }
}
const fn func(flags: Flags) -> Entry {
    e(Class::Func, Kw::Other, F.or(flags))
}
const fn kw(k: Kw) -> Entry {
    e(Class::Keyword, k, N)
}
const fn verb(k: Kw) -> Entry {
    e(Class::Verb, k, N)
}
const fn schema() -> Entry {
    e(Class::Bare, Kw::Other, Flags::SCHEMA)
}

const TIME: Flags = Flags::TIME;
const ERR: Flags = Flags::ERROR;
const DNG: Flags = Flags::DANGER;
const INF: Flags = Flags::INFO;

/// The keyword table, sorted by word (a test checks it) for binary search.
static TABLE: &[(&str, Entry)] = &[
    ("abs", func(N)),
    ("all", kw(Kw::All)),
    ("all_tab_columns", schema()),
    ("all_tables", schema()),
    ("all_users", schema()),
    ("alter", verb(Kw::Create)),
    ("analyse", func(ERR)),
    ("and", e(Class::Logic, Kw::Other, N)),
    ("array_agg", func(N)),
    ("as", kw(Kw::As)),
    ("asc", kw(Kw::Other)),
    ("ascii", func(N)),
    ("attach", verb(Kw::Attach)),
    ("begin", kw(Kw::Other)),
    ("benchmark", func(TIME)),
    ("between", e(Class::Cmp, Kw::Other, N)),
    ("bigint", e(Class::Bare, Kw::IntType, N)),
    ("bin", func(N)),
    ("by", kw(Kw::By)),
    ("case", kw(Kw::Other)),
    ("cast", e(Class::Func, Kw::Cast, F)),
    ("char", func(N)),
    ("char_length", func(N)),
    ("chr", func(N)),
    ("coalesce", func(N)),
    ("concat", func(N)),
    ("concat_ws", func(N)),
    ("convert", e(Class::Func, Kw::Convert, F)),
    ("copy", verb(Kw::Copy)),
    ("count", func(N)),
    ("create", verb(Kw::Create)),
    ("ctxsys.drithsx.sn", func(ERR)),
    ("current_database", func(INF)),
    ("current_setting", func(INF)),
    ("current_user", e(Class::Func, Kw::Other, F.or(INF))),
    ("database", e(Class::Func, Kw::Object, F.or(INF))),
    ("db_name", func(INF)),
    ("dba_users", schema()),
    ("dbms_lock.sleep", func(TIME)),
    ("dbms_pipe.receive_message", func(TIME)),
    ("dbms_xmlgen.getxml", func(INF)),
    ("decimal", e(Class::Bare, Kw::IntType, N)),
    ("declare", verb(Kw::Declare)),
    ("delay", kw(Kw::Delay)),
    ("delete", verb(Kw::Delete)),
    ("desc", kw(Kw::Other)),
    ("distinct", kw(Kw::Distinct)),
    ("div", e(Class::Op, Kw::Other, N)),
    ("drop", verb(Kw::Drop)),
    ("dual", schema()),
    ("dumpfile", kw(Kw::Outfile)),
    ("else", kw(Kw::Other)),
    ("elt", func(N)),
    ("end", kw(Kw::Other)),
    ("except", e(Class::Union, Kw::Union, N)),
    ("exec", verb(Kw::Exec)),
    ("execute", verb(Kw::Exec)),
    ("exists", func(N)),
    ("exp", func(N)),
    ("extractvalue", func(ERR)),
    ("false", e(Class::Num, Kw::Other, N)),
    ("floor", func(N)),
    ("from", kw(Kw::From)),
    ("function", e(Class::Keyword, Kw::Object, N)),
    ("geometrycollection", func(ERR)),
    ("glob", e(Class::Cmp, Kw::Other, N)),
    ("grant", verb(Kw::Grant)),
    ("greatest", func(N)),
    ("group", kw(Kw::Group)),
    ("group_concat", func(N)),
    ("gtid_subset", func(ERR)),
    ("having", kw(Kw::Having)),
    ("hex", func(N)),
    ("if", func(N)),
    ("ifnull", func(N)),
    ("iif", func(N)),
    ("ilike", e(Class::Cmp, Kw::Other, N)),
    ("in", e(Class::Cmp, Kw::Other, N)),
    ("index", e(Class::Keyword, Kw::Object, N)),
    ("information_schema", schema()),
    ("insert", verb(Kw::Insert)),
    ("instr", func(N)),
    ("int", e(Class::Bare, Kw::IntType, N)),
    ("integer", e(Class::Bare, Kw::IntType, N)),
    ("intersect", e(Class::Union, Kw::Union, N)),
    ("into", kw(Kw::Into)),
    ("is", e(Class::Cmp, Kw::Other, N)),
    ("is_srvrolemember", func(INF)),
    ("isnull", func(N)),
    ("join", kw(Kw::Other)),
    ("least", func(N)),
    ("left", func(N)),
    ("len", func(N)),
    ("length", func(N)),
    ("like", e(Class::Cmp, Kw::Other, N)),
    ("limit", kw(Kw::Limit)),
    ("linestring", func(ERR)),
    ("listagg", func(N)),
    ("lo_import", func(DNG)),
    ("load_extension", func(DNG)),
    ("load_file", func(DNG)),
    ("locate", func(N)),
    ("login", e(Class::Bare, Kw::Object, N)),
    ("lower", func(N)),
    ("make_set", func(N)),
    ("md5", func(N)),
    ("mid", func(N)),
    ("minus", e(Class::Union, Kw::Union, N)),
    ("mod", e(Class::Op, Kw::Other, N)),
    ("multipoint", func(ERR)),
    ("multipolygon", func(ERR)),
    ("mysql.user", schema()),
    ("name_const", func(ERR)),
    ("not", e(Class::Op, Kw::Other, N)),
    ("null", e(Class::Num, Kw::Other, N)),
    ("nullif", func(N)),
    ("numeric", e(Class::Bare, Kw::IntType, N)),
    ("nvl", func(N)),
    ("offset", kw(Kw::Limit)),
    ("opendatasource", func(DNG)),
    ("openrowset", func(DNG)),
    ("or", e(Class::Logic, Kw::Other, N)),
    ("ord", func(N)),
    ("order", kw(Kw::Order)),
    ("outfile", kw(Kw::Outfile)),
    ("pg_catalog", schema()),
    ("pg_database", schema()),
    ("pg_ls_dir", func(DNG)),
    ("pg_read_file", func(DNG)),
    ("pg_shadow", schema()),
    ("pg_sleep", func(TIME)),
    ("pg_sleep_for", func(TIME)),
    ("pg_tables", schema()),
    ("pg_user", schema()),
    ("polygon", func(ERR)),
    ("procedure", e(Class::Keyword, Kw::Object, N)),
    ("program", kw(Kw::Other)),
    ("rand", func(N)),
    ("randomblob", func(TIME)),
    ("regexp", e(Class::Cmp, Kw::Other, N)),
    ("replace", func(N)),
    ("reverse", func(N)),
    ("revoke", verb(Kw::Grant)),
    ("right", func(N)),
    ("rlike", e(Class::Cmp, Kw::Other, N)),
    ("round", func(N)),
    ("schema", e(Class::Keyword, Kw::Object, N)),
    ("select", e(Class::Select, Kw::Select, N)),
    ("session_user", e(Class::Func, Kw::Other, F.or(INF))),
    ("set", kw(Kw::Set)),
    ("sha1", func(N)),
    ("shutdown", verb(Kw::Shutdown)),
    ("signed", e(Class::Bare, Kw::IntType, N)),
    ("similar", e(Class::Cmp, Kw::Other, N)),
    ("sleep", func(TIME)),
    ("smallint", e(Class::Bare, Kw::IntType, N)),
    ("sounds", e(Class::Cmp, Kw::Other, N)),
    ("sp_configure", func(DNG)),
    ("sp_executesql", func(DNG)),
    ("sp_oacreate", func(DNG)),
    ("sqlite_master", schema()),
    ("sqlite_schema", schema()),
    ("sqlite_temp_master", schema()),
    ("sqlite_version", func(INF)),
    ("string_agg", func(N)),
    ("substr", func(N)),
    ("substrc", func(N)),
    ("substring", func(N)),
    ("substring_index", func(N)),
    ("sys.columns", schema()),
    ("sys.databases", schema()),
    ("sys.objects", schema()),
    ("sys.tables", schema()),
    ("sys_context", func(INF)),
    ("syscolumns", schema()),
    ("sysdatabases", schema()),
    ("sysobjects", schema()),
    ("system_user", e(Class::Func, Kw::Other, F.or(INF))),
    ("table", e(Class::Keyword, Kw::Object, N)),
    ("then", kw(Kw::Other)),
    ("to_char", func(N)),
    ("top", kw(Kw::Other)),
    ("trigger", e(Class::Keyword, Kw::Object, N)),
    ("trim", func(N)),
    ("true", e(Class::Num, Kw::Other, N)),
    ("truncate", verb(Kw::Truncate)),
    ("unhex", func(N)),
    ("unicode", func(N)),
    ("union", e(Class::Union, Kw::Union, N)),
    ("unsigned", e(Class::Bare, Kw::IntType, N)),
    ("update", verb(Kw::Update)),
    ("updatexml", func(ERR)),
    ("upper", func(N)),
    ("user", e(Class::Func, Kw::Object, F.or(INF))),
    ("user_tab_columns", schema()),
    ("user_tables", schema()),
    ("utl_http.request", func(DNG)),
    ("utl_inaddr.get_host_address", func(ERR)),
    ("utl_inaddr.get_host_name", func(ERR)),
    ("uuid_to_bin", func(ERR)),
    ("v$version", schema()),
    ("values", kw(Kw::Other)),
    ("version", func(INF)),
    ("view", e(Class::Keyword, Kw::Object, N)),
    ("waitfor", verb(Kw::Waitfor)),
    ("when", kw(Kw::Other)),
    ("where", kw(Kw::Other)),
    ("xmltype", func(ERR)),
    ("xor", e(Class::Logic, Kw::Other, N)),
    ("xp_cmdshell", func(DNG)),
    ("xp_dirtree", func(DNG)),
    ("xp_regread", func(DNG)),
];

/// Looks a word up in the keyword table, ignoring ASCII case. Qualified names
/// (`information_schema.tables`, `master..xp_cmdshell`) fall back to their first segment for
/// catalogues and their last segment for catalogues and dangerous procedures, but never for
/// plain functions: `time.sleep(5)` in a Python snippet is not `sleep(5)`.
pub fn lookup(word: &str) -> Option<Entry> {
    if word.len() > 40 {
        return None;
    }
    let mut buf = [0u8; 40];
    let lower = &mut buf[..word.len()];
    lower.copy_from_slice(word.as_bytes());
    lower.make_ascii_lowercase();
    let lower = std::str::from_utf8(lower).ok()?;
    if let Some(entry) = find(lower) {
        return Some(entry);
    }
    let first = lower.split('.').next().filter(|f| f.len() < lower.len())?;
    if let Some(entry) = find(first).filter(|e| e.flags.contains(Flags::SCHEMA)) {
        return Some(entry);
    }
    let last = lower.rsplit('.').next()?;
    find(last).filter(|e| e.flags.intersects(Flags::SCHEMA.or(Flags::DANGER)))
}

fn find(word: &str) -> Option<Entry> {
    TABLE
        .binary_search_by(|(w, _)| (*w).cmp(word))
        .ok()
        .map(|i| TABLE[i].1)
}

/// Whether the keyword table is sorted; exposed for the test that guards binary search.
#[doc(hidden)]
pub fn table_is_sorted() -> bool {
    TABLE.windows(2).all(|w| w[0].0 < w[1].0)
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Streaming tokenizer over one value in one [`Context`].
#[derive(Clone, Debug)]
pub struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    open_quote: Option<u8>,
    in_versioned: bool,
}

impl<'a> Lexer<'a> {
    /// Lexes `src` (ideally already [normalised](super::normalize::normalize)) as if pasted
    /// into `context`.
    pub fn new(src: &'a str, context: Context) -> Self {
        Lexer {
            src,
            pos: 0,
            open_quote: context.opening_quote(),
            in_versioned: false,
        }
    }

    fn bytes(&self) -> &'a [u8] {
        self.src.as_bytes()
    }

    fn at(&self, i: usize) -> u8 {
        self.bytes().get(i).copied().unwrap_or(0)
    }

    fn slice(&self, start: usize, end: usize) -> &'a str {
        self.src.get(start..end).unwrap_or("")
    }

    fn token(&self, class: Class, start: usize, end: usize) -> Token<'a> {
        Token {
            class,
            text: self.slice(start, end),
            entry: None,
            closed: true,
        }
    }

    /// Skips whitespace and non-executable comments starting at `i`; returns the new index.
    /// Tracks `/*! ... */` so its closing `*/` is skipped too.
    fn skip_space_from(&self, mut i: usize, in_versioned: &mut bool) -> usize {
        let b = self.bytes();
        loop {
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if b.get(i) == Some(&b'/') && b.get(i + 1) == Some(&b'*') {
                if b.get(i + 2) == Some(&b'!') {
                    *in_versioned = true;
                    i += 3;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                } else {
                    // An unterminated `/*` is left for `next` to report as a comment: it
                    // truncates the rest of the query (`admin'/*`).
                    match block_comment_end(b, i) {
                        Some(end) => i = end,
                        None => return i,
                    }
                }
            } else if *in_versioned && b.get(i) == Some(&b'*') && b.get(i + 1) == Some(&b'/') {
                *in_versioned = false;
                i += 2;
            } else {
                return i;
            }
        }
    }

    fn string(&mut self, body_start: usize, quote: u8) -> Token<'a> {
        let b = self.bytes();
        let mut i = body_start;
        loop {
            match b[i.min(b.len())..].iter().position(|&c| c == quote) {
                None => {
                    self.pos = b.len();
                    let mut t = self.token(Class::Str, body_start, b.len());
                    t.closed = false;
                    return t;
                }
                Some(p) => {
                    let q = i + p;
                    if b.get(q + 1) == Some(&quote) {
                        i = q + 2;
                        continue;
                    }
                    self.pos = q + 1;
                    return self.token(Class::Str, body_start, q);
                }
            }
        }
    }

    fn line_comment(&mut self, start: usize) -> Token<'a> {
        let b = self.bytes();
        let end = b[start..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(b.len(), |p| start + p);
        self.pos = end;
        self.token(Class::Comment, start, end)
    }

    fn number(&mut self, start: usize) -> Token<'a> {
        let b = self.bytes();
        let mut i = start;
        if b[i] == b'0' && matches!(self.at(i + 1), b'x' | b'X' | b'b' | b'B') {
            let hex = matches!(self.at(i + 1), b'x' | b'X');
            let digits = b[i + 2..]
                .iter()
                .take_while(|c| {
                    if hex {
                        c.is_ascii_hexdigit()
                    } else {
                        matches!(c, b'0' | b'1')
                    }
                })
                .count();
            if digits > 0 {
                self.pos = i + 2 + digits;
                return self.token(Class::Num, start, self.pos);
            }
        }
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
        if i < b.len() && matches!(b[i], b'e' | b'E') {
            let mut j = i + 1;
            if j < b.len() && matches!(b[j], b'+' | b'-') {
                j += 1;
            }
            if j < b.len() && b[j].is_ascii_digit() {
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                i = j;
            }
        }
        self.pos = i;
        self.token(Class::Num, start, i)
    }

    fn word_end(&self, start: usize) -> usize {
        let b = self.bytes();
        let mut i = start;
        while i < b.len() {
            let c = b[i];
            let dotted = c == b'.' && (is_word_byte(self.at(i + 1)) || self.at(i + 1) == b'.');
            if is_word_byte(c) || dotted {
                i += 1;
            } else {
                break;
            }
        }
        i
    }

    fn word(&mut self, start: usize) -> Token<'a> {
        let mut end = self.word_end(start);
        let mut entry = lookup(self.slice(start, end));
        // `UN/**/ION`: glue halves split by empty comments when together they are a keyword.
        let mut joined = [0u8; 32];
        let mut joined_len = 0usize;
        for _ in 0..3 {
            let b = self.bytes();
            if !(b.get(end) == Some(&b'/')
                && b.get(end + 1) == Some(&b'*')
                && self.at(end + 2) != b'!')
            {
                break;
            }
            let Some(after) = block_comment_end(b, end) else {
                break;
            };
            if !is_word_byte(self.at(after)) {
                break;
            }
            let next_end = self.word_end(after);
            if joined_len == 0 {
                let first = &b[start..end];
                if first.len() > joined.len() {
                    break;
                }
                joined[..first.len()].copy_from_slice(first);
                joined_len = first.len();
            }
            let piece = &b[after..next_end];
            if joined_len + piece.len() > joined.len() {
                break;
            }
            joined[joined_len..joined_len + piece.len()].copy_from_slice(piece);
            let candidate = std::str::from_utf8(&joined[..joined_len + piece.len()])
                .ok()
                .and_then(lookup);
            match candidate {
                Some(found) => {
                    joined_len += piece.len();
                    entry = Some(found);
                    end = next_end;
                }
                None => break,
            }
        }
        self.pos = end;
        let mut class = entry.map_or(Class::Bare, |e| e.class);
        if let Some(found) = entry.filter(|e| e.flags.contains(Flags::FUNC)) {
            let mut versioned = self.in_versioned;
            let next = self.skip_space_from(end, &mut versioned);
            class = if self.at(next) == b'(' {
                found.class
            } else {
                Class::Bare
            };
        }
        Token {
            class,
            text: self.slice(start, end),
            entry,
            closed: true,
        }
    }

    fn dollar(&mut self, start: usize) -> Token<'a> {
        let b = self.bytes();
        if self.at(start + 1).is_ascii_digit() {
            let end = start
                + 1
                + b[start + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit())
                    .count();
            self.pos = end;
            return self.token(Class::Var, start, end);
        }
        // PostgreSQL dollar quoting: $tag$ ... $tag$
        let tag_len = b[start + 1..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .count();
        if self.at(start + 1 + tag_len) == b'$' {
            let tag = &b[start..start + tag_len + 2];
            let body = start + tag.len();
            let close = b[body..]
                .windows(tag.len())
                .position(|w| w == tag)
                .map(|p| body + p);
            let mut t = self.token(Class::Str, body, close.unwrap_or(b.len()));
            t.closed = close.is_some();
            self.pos = close.map_or(b.len(), |c| c + tag.len());
            return t;
        }
        self.pos = start + 1;
        self.token(Class::Other, start, start + 1)
    }

    fn operator(&mut self, start: usize) -> Token<'a> {
        let c = self.at(start);
        let n = self.at(start + 1);
        let (class, len) = match (c, n) {
            (b'|', b'|') | (b'&', b'&') => (Class::Logic, 2),
            (b'<', b'=') if self.at(start + 2) == b'>' => (Class::Cmp, 3),
            (b'<', b'=' | b'>') | (b'>' | b'!', b'=') | (b'=', b'=') => (Class::Cmp, 2),
            (b'!', b'<' | b'>') => (Class::Cmp, 2),
            (b'<', b'<') | (b'>', b'>') | (b':', b':' | b'=') => (Class::Op, 2),
            (b'=' | b'<' | b'>', _) => (Class::Cmp, 1),
            (b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'|' | b'&' | b'~' | b'!' | b':', _) => {
                (Class::Op, 1)
            }
            _ => {
                // One whole char, so a multi-byte char never splits.
                let len = self
                    .src
                    .get(start..)
                    .and_then(|s| s.chars().next())
                    .map_or(1, char::len_utf8);
                (Class::Other, len)
            }
        };
        self.pos = start + len;
        self.token(class, start, start + len)
    }
}

fn block_comment_end(b: &[u8], start: usize) -> Option<usize> {
    b.get(start + 2..)?
        .windows(2)
        .position(|w| w == b"*/")
        .map(|p| start + 2 + p + 2)
}

impl<'a> Iterator for Lexer<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        if let Some(q) = self.open_quote.take() {
            return Some(self.string(0, q));
        }
        let mut versioned = self.in_versioned;
        let start = self.skip_space_from(self.pos, &mut versioned);
        self.in_versioned = versioned;
        self.pos = start;
        let b = self.bytes();
        let c = *b.get(start)?;
        let next = self.at(start + 1);
        let tok = match c {
            b'\'' | b'"' => self.string(start + 1, c),
            b'`' => {
                let t = self.string(start + 1, b'`');
                Token {
                    class: Class::Bare,
                    ..t
                }
            }
            b'/' if next == b'*' => {
                // Only an unterminated block comment reaches here.
                self.pos = b.len();
                let mut t = self.token(Class::Comment, start, b.len());
                t.closed = false;
                t
            }
            b'-' if next == b'-' => self.line_comment(start),
            b'#' => self.line_comment(start),
            b'0'..=b'9' => self.number(start),
            b'.' if next.is_ascii_digit() => self.number(start),
            b'n' | b'N' | b'e' | b'E' | b'x' | b'X' | b'b' | b'B' if next == b'\'' => {
                self.string(start + 2, b'\'')
            }
            b'@' => {
                let at = if next == b'@' { 2 } else { 1 };
                let end = start
                    + at
                    + b[start + at..]
                        .iter()
                        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'.')
                        .count();
                self.pos = end;
                self.token(Class::Var, start, end)
            }
            b'$' => self.dollar(start),
            b'(' => self.single(Class::LParen, start),
            b')' => self.single(Class::RParen, start),
            b',' => self.single(Class::Comma, start),
            b';' => self.single(Class::Semi, start),
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => self.word(start),
            _ => self.operator(start),
        };
        Some(tok)
    }
}

impl<'a> Lexer<'a> {
    fn single(&mut self, class: Class, start: usize) -> Token<'a> {
        self.pos = start + 1;
        self.token(class, start, start + 1)
    }
}

/// Convenience: all tokens of `src` in `context`.
pub fn tokenize(src: &str, context: Context) -> Vec<Token<'_>> {
    Lexer::new(src, context).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(src: &str, ctx: Context) -> String {
        Lexer::new(src, ctx)
            .map(|t| t.class.code() as char)
            .collect()
    }

    #[test]
    fn table_sorted_for_binary_search() {
        assert!(table_is_sorted());
    }

    #[test]
    fn classic_tautology_in_single_quote() {
        assert_eq!(classes("1' or '1'='1", Context::SingleQuote), "s&s=s");
    }

    #[test]
    fn name_with_apostrophe_is_string_then_bareword() {
        assert_eq!(classes("o'brien", Context::SingleQuote), "sb");
    }

    #[test]
    fn union_select_bare() {
        assert_eq!(
            classes("1 union select password from users--", Context::Bare),
            "nUSbkbc"
        );
    }

    #[test]
    fn functions_need_parenthesis() {
        assert_eq!(classes("sleep(5)", Context::Bare), "f(n)");
        assert_eq!(classes("sleep well", Context::Bare), "bb");
        assert_eq!(classes("time.sleep(5)", Context::Bare), "b(n)");
    }

    #[test]
    fn inline_comment_joins_split_keyword() {
        let toks = tokenize("1 un/**/ion sel/**/ect 1", Context::Bare);
        let cls: String = toks.iter().map(|t| t.class.code() as char).collect();
        assert_eq!(cls, "nUSn");
    }

    #[test]
    fn block_comment_is_whitespace_but_versioned_content_is_code() {
        assert_eq!(classes("1/**/or/**/1", Context::Bare), "n&n");
        assert_eq!(classes("1 /*!50000union*/ select 1", Context::Bare), "nUSn");
    }

    #[test]
    fn doubled_quote_stays_inside_string() {
        let toks = tokenize("it''s fine", Context::SingleQuote);
        assert_eq!(toks.len(), 1);
        assert!(!toks[0].closed);
    }

    #[test]
    fn qualified_names() {
        assert_eq!(
            lookup("information_schema.tables").map(|e| e.flags),
            Some(Flags::SCHEMA)
        );
        assert!(lookup("master..xp_cmdshell").is_some_and(|e| e.flags.contains(Flags::DANGER)));
        assert_eq!(lookup("time.sleep"), None);
        assert!(lookup("DBMS_PIPE.RECEIVE_MESSAGE").is_some_and(|e| e.flags.contains(Flags::TIME)));
    }

    #[test]
    fn operators() {
        assert_eq!(classes("1<=>1 || 2 && 3 != 4", Context::Bare), "n=n&n&n=n");
        assert_eq!(classes("@@version @x $1", Context::Bare), "vvv");
        assert_eq!(classes("$$a$$ 0x41 n'x'", Context::Bare), "sns");
    }
}
