//! Benign values: what legitimate users put in fields, chosen to look as much like SQL as
//! real traffic does (apostrophes in names and other languages, "select", "union", "drop",
//! "or" in prose, SQL questions, code, JSON, PostgREST filters).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{Category, Label, Sample};

/// Kind of benign value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BenignKind {
    /// Personal names, many with apostrophes, from many cultures.
    Name,
    /// Product reviews that use SQL words naturally.
    Review,
    /// Chat messages.
    Chat,
    /// Questions about SQL, quoting SQL.
    SqlProse,
    /// Email addresses.
    Email,
    /// URLs and paths.
    Url,
    /// JSON documents.
    Json,
    /// Markdown.
    Markdown,
    /// Code in several languages.
    Code,
    /// Text in other languages and scripts.
    Multilingual,
    /// Numbers, dates, UUIDs, prices, phone numbers.
    Scalar,
    /// PostgREST filter values.
    Postgrest,
    /// Short free-form tokens: single words (SQL keywords among them), user names, emoticons
    /// and punctuation, `key=value` lists, simple comparisons as people write them in notes.
    Token,
}

impl BenignKind {
    /// Every kind.
    pub const ALL: [BenignKind; 13] = [
        BenignKind::Name,
        BenignKind::Review,
        BenignKind::Chat,
        BenignKind::SqlProse,
        BenignKind::Email,
        BenignKind::Url,
        BenignKind::Json,
        BenignKind::Markdown,
        BenignKind::Code,
        BenignKind::Multilingual,
        BenignKind::Scalar,
        BenignKind::Postgrest,
        BenignKind::Token,
    ];

    /// Label used in categories.
    pub const fn as_str(self) -> &'static str {
        match self {
            BenignKind::Name => "name",
            BenignKind::Review => "review",
            BenignKind::Chat => "chat",
            BenignKind::SqlProse => "sql-prose",
            BenignKind::Email => "email",
            BenignKind::Url => "url",
            BenignKind::Json => "json",
            BenignKind::Markdown => "markdown",
            BenignKind::Code => "code",
            BenignKind::Multilingual => "multilingual",
            BenignKind::Scalar => "scalar",
            BenignKind::Postgrest => "postgrest",
            BenignKind::Token => "token",
        }
    }
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

const FIRST: &[&str] = &[
    "Liam",
    "Olivia",
    "Noah",
    "Emma",
    "Aoife",
    "Siobhán",
    "Seán",
    "Niamh",
    "D'Andre",
    "D'Shawn",
    "Ja'Marr",
    "Mo'Nique",
    "Shaquille",
    "Zoë",
    "Chloé",
    "François",
    "Jean-Luc",
    "Renée",
    "José",
    "María",
    "Begoña",
    "João",
    "Giuseppe",
    "Dell",
    "Björn",
    "Søren",
    "Åsa",
    "Jürgen",
    "Łukasz",
    "Małgorzata",
    "Dmitri",
    "Анна",
    "Олег",
    "Mehmet",
    "Ayşe",
    "Fatima",
    "Muhammad",
    "Nguyễn",
    "Thảo",
    "Wei",
    "Li",
    "Hiroshi",
    "Yuki",
    "Priya",
    "Arjun",
    "Kwame",
    "Ngozi",
    "Chidi",
    "Amara",
    "Tāne",
    "Keoni",
    "Leilani",
    "Kamaʻehu",
    "Bartholomew",
    "Ann-Marie",
];
const LAST: &[&str] = &[
    "O'Brien",
    "O'Connor",
    "O'Neill",
    "O'Sullivan",
    "O'Reilly",
    "D'Angelo",
    "D'Amico",
    "D'Souza",
    "D'Arcy",
    "Dell'Acqua",
    "Dall'Ara",
    "L'Estrange",
    "N'Diaye",
    "N'Dour",
    "M'Bala",
    "Ng'ang'a",
    "Ka'ahumanu",
    "Mc'Kay",
    "St. John",
    "Smith",
    "García",
    "Müller",
    "van der Berg",
    "de la Cruz",
    "Al-Hassan",
    "bin Laden-Smith",
    "Nakamura",
    "Kowalski",
    "Иванов",
    "Петрова",
    "Yılmaz",
    "Nguyen",
    "Tran",
    "Kim",
    "Park",
    "Singh",
    "Okafor",
    "Mensah",
    "Ó Briain",
    "Ní Dhomhnaill",
    "Mac Giolla",
    "Fitzgerald",
    "Union",
    "Select",
    "Drop",
    "Table",
    "Orr",
    "Andor",
    "Null",
    "Delay",
];

fn name(rng: &mut ChaCha8Rng) -> String {
    let f = pick(rng, FIRST);
    let l = pick(rng, LAST);
    match rng.random_range(0..8) {
        0 => format!("{l}, {f}"),
        1 => format!("Dr. {f} {l}"),
        2 => format!("{f} {l}'s account"),
        3 => l.to_string(),
        4 => format!("{f} and {} {l}", pick(rng, FIRST)),
        5 => format!("{} {l}", f.to_uppercase()),
        6 => format!("{f} \"{}\" {l}", pick(rng, FIRST)),
        _ => format!("{f} {l}"),
    }
}

const PRODUCTS: &[&str] = &[
    "phone",
    "table",
    "desk lamp",
    "drop-leaf table",
    "union jack flag",
    "blender",
    "router",
    "select comfort mattress",
    "kettle",
    "stroller",
    "jacket",
    "drill",
    "monitor",
    "sofa",
];
const REVIEW_BITS: &[&str] = &[
    "I had to select between the red and the blue one and I'm glad I chose red",
    "Don't drop it, the screen cracks if you do",
    "It's the best {p} I've ever owned, 5 stars",
    "Where do I even start? The delete button doesn't work and update takes forever",
    "The union of style and comfort, honestly",
    "Kids' and parents' favourite, we use it every day",
    "My wife's and my daughter's favourite {p}",
    "Arrived 2 days late; update: seller refunded shipping",
    "I'd order again -- great value for money",
    "Select the larger size, it runs small",
    "It's 5' 10\" tall, taller than I expected",
    "Fits in the drop zone by the door; the table beside it is from IKEA",
    "Would've given 5 stars but the 'premium' finish peeled off",
    "Not sure if it's worth it or not",
    "Works with 110 or 220 volts, great for travel",
    "Bought it for my son's room and he loves it!!!",
    "10/10 would buy again; customer service was 'meh' though",
    "Students' and teachers' choice award, deserved",
    "The drop in price made it a no-brainer",
    "I can't select the language in settings, anyone else?",
    "Insert the batteries first or it won't turn on",
    "Set it up in 5 minutes; the 'quick start' guide is actually quick",
    "Sleep mode works great and it wakes in 1 second",
    "It's a bit loud (around 60 dB) but ok",
    "Compared with my old one, it's 2x faster and half the price",
    "1 star: broke after a week. 2nd one was fine",
    "They said 'drop table' in the manual lol, it means the folding leaf",
    "Exec summary: buy it.",
];

fn review(rng: &mut ChaCha8Rng) -> String {
    let n = rng.random_range(1..=3);
    let mut out = String::new();
    for i in 0..n {
        if i > 0 {
            out.push_str(if rng.random_bool(0.5) { ". " } else { "! " });
        }
        out.push_str(
            &pick(rng, REVIEW_BITS).replace("{p}", PRODUCTS[rng.random_range(0..PRODUCTS.len())]),
        );
    }
    if rng.random_bool(0.3) {
        out.push_str(&format!(" {}/5", rng.random_range(1..=5)));
    }
    out
}

const CHAT: &[&str] = &[
    "lol I'm gonna drop the table tennis class",
    "select me for the team pls",
    "meet @ 5 or 6?",
    "that's 1 or 2 days max",
    "can't wait!!! :)",
    "union meeting at 3pm; bring snacks",
    "ok ok I'll update you tomorrow",
    "where r u??",
    "it's 'fine' I guess",
    "haha yes or no?",
    "did u see Sarah's and Tom's pics",
    "omg 😂😂",
    "brb, grabbing coffee ☕",
    "1 sec",
    "can you delete that msg pls",
    "ok so the plan: 1) eat 2) sleep 3) repeat",
    "Who's in? @mike @jess",
    "we're at table 5 by the window",
    "drop me a line when you're free",
    "gg wp",
    "i'd say 7 or 8, not more",
    "don't forget mom's birthday!",
    "#tbt to last summer",
    "the vote was 12 to 3; motion passed",
    "let's go w/ option 2 or 3",
    "she said \"no\" and left",
    "y'all ready?",
    "Nah, it's not worth it or whatever",
    "rock 'n' roll tonight?",
];

fn chat(rng: &mut ChaCha8Rng) -> String {
    let base = *pick(rng, CHAT);
    match rng.random_range(0..5) {
        0 => format!("{base} {}", pick(rng, CHAT)),
        1 => base.to_uppercase(),
        2 => format!("{} {base}", pick(rng, FIRST)),
        _ => base.to_string(),
    }
}

const SQL_PROSE: &[&str] = &[
    "How do I write SELECT * FROM users WHERE name = 'O''Brien' in Postgres?",
    "Why does my query `DELETE FROM orders WHERE id = 5;` not delete anything?",
    "I tried UNION SELECT but got error 1222: The used SELECT statements have a different number of columns",
    "What's the difference between UNION and UNION ALL?",
    "Is it safe to use `ORDER BY 1` in production code?",
    "My table has columns id, name and email. How do I select only the last 10 rows?",
    "Use a LEFT JOIN instead of WHERE x IN (SELECT ...) for speed",
    "Should I DROP TABLE or TRUNCATE to empty it? Which one resets the sequence?",
    "In MySQL, SLEEP() takes seconds, not milliseconds, right?",
    "Query: SELECT name, COUNT(*) FROM pets GROUP BY name HAVING COUNT(*) > 1",
    "The docs say INSERT INTO t (a, b) VALUES (1, 2) returns the new id with RETURNING",
    "Can someone explain what WAITFOR DELAY does in T-SQL?",
    "Why is 'NULL = NULL' not true in SQL?",
    "Postgres: how to cast text to int? CAST(x AS INTEGER) fails on empty strings",
    "Got ORA-00933: SQL command not properly ended when I added ORDER BY",
    "sqlite_master lists the tables, but how do I see the columns?",
    "Prefer parameterized queries over string concatenation like \"... WHERE id = \" + id",
    "EXPLAIN ANALYZE shows a seq scan on users; do I need an index on email?",
    "I want to update the price where the category is 'books' and stock > 0",
    "How to select rows where the date is between two values in SQL Server?",
];

fn sql_prose(rng: &mut ChaCha8Rng) -> String {
    let q = *pick(rng, SQL_PROSE);
    match rng.random_range(0..4) {
        0 => format!("{q} Thanks in advance!"),
        1 => format!("Hi all, {q}"),
        _ => q.to_string(),
    }
}

const DOMAINS: &[&str] = &[
    "example.com",
    "mail.example.org",
    "uni.ac.uk",
    "company.co",
    "xn--80ak6aa92e.com",
];

fn email(rng: &mut ChaCha8Rng) -> String {
    let f = pick(
        rng,
        &[
            "john",
            "o'brien",
            "mary.o'neil",
            "d'angelo",
            "a.smith",
            "user+tag",
            "info",
            "select",
            "union.rep",
        ],
    );
    let d = pick(rng, DOMAINS);
    match rng.random_range(0..4) {
        0 => format!("{f}{}@{d}", rng.random_range(1..999)),
        1 => format!("\"{f}\" <{f}@{d}>"),
        _ => format!("{f}@{d}"),
    }
}

fn url(rng: &mut ChaCha8Rng) -> String {
    let q = pick(
        rng,
        &[
            "select+union",
            "o%27brien",
            "drop+shipping",
            "1+or+2",
            "rock%27n%27roll",
            "a%20b",
            "where+to+eat",
        ],
    );
    match rng.random_range(0..5) {
        0 => format!(
            "https://{}/search?q={q}&page={}",
            pick(rng, DOMAINS),
            rng.random_range(1..50)
        ),
        1 => format!(
            "/api/v1/items/{}?select=id,name&order=name.desc",
            rng.random_range(1..9999)
        ),
        2 => format!(
            "https://{}/blog/2024/05/why-we-dropped-{}",
            pick(rng, DOMAINS),
            pick(rng, &["mysql", "oracle", "the-union"])
        ),
        3 => format!(
            "file:///C:/Users/{}/Documents/report.pdf",
            pick(rng, &["OBrien", "d'angelo", "admin"])
        ),
        _ => format!(
            "https://{}/#/orders/{}?tab=details",
            pick(rng, DOMAINS),
            rng.random_range(1..9999)
        ),
    }
}

fn json(rng: &mut ChaCha8Rng) -> String {
    let n = pick(rng, LAST);
    match rng.random_range(0..6) {
        0 => format!(
            "{{\"name\":\"{n}\",\"tags\":[\"sql\",\"union\"],\"count\":{}}}",
            rng.random_range(0..100)
        ),
        1 => format!(
            "[{},{},{}]",
            rng.random_range(0..9),
            rng.random_range(0..9),
            rng.random_range(0..9)
        ),
        2 => "{\"or\":[{\"age\":{\"gt\":18}},{\"student\":true}]}".to_string(),
        3 => format!(
            "{{\"query\":\"select\",\"where\":{{\"id\":{}}},\"and\":null}}",
            rng.random_range(1..999)
        ),
        4 => format!(
            "{{\"comment\": \"it's {} or nothing\"}}",
            pick(rng, PRODUCTS)
        ),
        _ => format!("{{\"a\": {{\"b\": [\"{n}\", 1.5, false]}}}}"),
    }
}

fn markdown(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..5) {
        0 => format!(
            "# {}\n\n- item one\n- item two\n\n**bold** and _italic_",
            pick(rng, PRODUCTS)
        ),
        1 => {
            "## Usage\n\n```sql\nSELECT id, name FROM users WHERE active = true;\n```\n".to_string()
        }
        2 => format!("> {}\n\n— *{}*", pick(rng, REVIEW_BITS), pick(rng, LAST)),
        3 => "| col | type |\n|---|---|\n| id | int |\n| name | text |".to_string(),
        _ => format!(
            "1. Select the file\n2. Click **Upload**\n3. Wait {} seconds",
            rng.random_range(1..60)
        ),
    }
}

const CODE: &[&str] = &[
    "def f(x):\n    return x or 1",
    "const q = \"SELECT * FROM t WHERE id = \" + id;",
    "let total: i32 = items.iter().map(|v| v * 2).sum();",
    "if (a == 1 || b == 2) { return 0; }",
    "for i in range(10): print(i)",
    "SELECT id, name FROM users WHERE active = true ORDER BY name;",
    "grep -r 'TODO' src/ | wc -l",
    "x = 'a' if cond else 'b'",
    "func main() { fmt.Println(\"hello\") }",
    "public static void main(String[] args) { System.out.println(args[0]); }",
    "time.sleep(5)",
    "await db.query('select * from users where id = $1', [id])",
    "SELECT COUNT(*) FROM orders o JOIN users u ON u.id = o.user_id GROUP BY u.id;",
    "UPDATE products SET price = price * 1.1 WHERE category = 'books';",
    "<div class=\"note\">It's done</div>",
    "echo \"$USER's home is $HOME\"",
    "#include <stdio.h>\nint main() { return 0; }",
    "rm -rf ./build && make -j4",
    "std::cout << \"Hi\" << std::endl;",
    "array.filter(x => x > 1 && x < 10)",
];

fn code(rng: &mut ChaCha8Rng) -> String {
    let c = *pick(rng, CODE);
    if rng.random_bool(0.3) {
        format!("{c}\n{}", pick(rng, CODE))
    } else {
        c.to_string()
    }
}

const I18N: &[&str] = &[
    "C'est l'été, et j'ai faim",
    "Aujourd'hui ou demain, peu importe",
    "l'or et l'argent",
    "Qu'il fasse beau ou pas, on sort",
    "dell'anno scorso, un'altra volta",
    "L'any que ve anirem a Girona",
    "Ich hätte gern ein Bier oder zwei",
    "¿Dónde está la biblioteca?",
    "Привет, как дела? Выбери таблицу",
    "こんにちは、テーブルを選択してください",
    "请选择一个选项，然后点击“确定”",
    "안녕하세요, 주문을 업데이트했습니다",
    "مرحبا، كيف حالك؟",
    "שלום, מה שלומך?",
    "नमस्ते, आप कैसे हैं?",
    "Γειά σου, τι κάνεις;",
    "Merhaba, nasılsın? Sipariş'in yolda",
    "สวัสดีครับ",
    "Xin chào, tôi tên là Nguyễn",
    "Ngā mihi nui ki a koutou",
    "‘Curly quotes’ and “double curly” ones",
    "Ｆｕｌｌｗｉｄｔｈ ｔｅｘｔ （テスト）",
];

fn multilingual(rng: &mut ChaCha8Rng) -> String {
    let t = *pick(rng, I18N);
    if rng.random_bool(0.3) {
        format!("{t} {}", pick(rng, I18N))
    } else {
        t.to_string()
    }
}

fn scalar(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..14) {
        0 => rng.random_range(0..100_000).to_string(),
        1 => format!("-{}", rng.random_range(1..1000)),
        2 => format!(
            "{}.{:02}",
            rng.random_range(0..10_000),
            rng.random_range(0..100)
        ),
        3 => format!(
            "2{:03}-{:02}-{:02}",
            rng.random_range(0..30),
            rng.random_range(1..13),
            rng.random_range(1..29)
        ),
        4 => format!(
            "{:02}/{:02}/20{:02}",
            rng.random_range(1..29),
            rng.random_range(1..13),
            rng.random_range(0..30)
        ),
        5 => format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            rng.random::<u32>(),
            rng.random::<u16>(),
            rng.random_range(0..0xfff),
            rng.random_range(0..0xfff),
            rng.random::<u64>() & 0xffff_ffff_ffff
        ),
        6 => format!(
            "+1 ({}) {}-{:04}",
            rng.random_range(200..999),
            rng.random_range(200..999),
            rng.random_range(0..9999)
        ),
        7 => format!(
            "${},{:03}.{:02}",
            rng.random_range(1..99),
            rng.random_range(0..999),
            rng.random_range(0..99)
        ),
        8 => format!("{}%", rng.random_range(0..100)),
        9 => format!("#{:06x}", rng.random_range(0..0xffffff)),
        10 => format!(
            "{}.{}.{}",
            rng.random_range(0..5),
            rng.random_range(0..20),
            rng.random_range(0..50)
        ),
        11 => format!(
            "{} or {}",
            rng.random_range(1..10),
            rng.random_range(10..20)
        ),
        12 => format!("{}-{}", rng.random_range(1..50), rng.random_range(50..100)),
        _ => format!(
            "2024-{:02}-{:02}T{:02}:{:02}:00Z",
            rng.random_range(1..13),
            rng.random_range(1..29),
            rng.random_range(0..24),
            rng.random_range(0..60)
        ),
    }
}

fn postgrest(rng: &mut ChaCha8Rng) -> String {
    let n = rng.random_range(0..1000);
    match rng.random_range(0..16) {
        0 => format!("eq.{n}"),
        1 => format!("gt.{n}"),
        2 => format!("in.({},{},{})", n, n + 1, n + 2),
        3 => "in.(\"a\",\"b\")".to_string(),
        4 => "is.null".to_string(),
        5 => format!("not.eq.{n}"),
        6 => format!("ilike.*{}*", pick(rng, LAST)),
        7 => "cs.{a,b}".to_string(),
        8 => format!("cd.{{{n},{}}}", n + 1),
        9 => format!("or=(a.eq.{n},b.gt.{})", n + 2),
        10 => "and=(age.gte.18,student.is.true)".to_string(),
        11 => format!("fts.{}", pick(rng, PRODUCTS)),
        12 => "select=id,name,orders(id,total)".to_string(),
        13 => "order=name.desc.nullslast".to_string(),
        14 => format!("eq.{}", pick(rng, LAST)),
        _ => format!("lte.{}-01-01", 1990 + n % 40),
    }
}

const WORDS: &[&str] = &[
    "select", "union", "drop", "delete", "insert", "update", "table", "order", "group", "where",
    "from", "join", "version", "user", "admin", "root", "guest", "password", "null", "true",
    "false", "none", "sleep", "wait", "delay", "exec", "char", "count", "limit", "having", "like",
    "and", "or", "not", "all", "any", "case", "when", "then", "end", "begin", "commit", "hello",
    "thanks", "yes", "no", "maybe", "ok", "cool", "test", "demo", "foo", "bar", "baz", "blue",
    "green", "coffee", "pizza", "weekend", "tomorrow", "urgent", "draft", "final", "invoice",
    "refund", "shipping", "login", "logout", "profile", "settings", "search", "home",
];

const EMOTICONS: &[&str] = &[
    ":)", ":-)", ";)", ":D", ":(", ":/", ":P", "xD", "^_^", "-_-", "o_O", "<3", "</3", ":'(", "--",
    "---", "...", "?!", "!?", "'", "\"", "''", "\"\"", "`", "*", "**", "#", "@", "&", "~", "+1",
    "-1", "n/a", "tbd", "???", "!!", ";", ":", "=", "==", "->", "=>", "//", "/*", "*/",
];

const VARS: &[&str] = &[
    "x", "y", "n", "i", "age", "price", "qty", "count", "total", "score", "level", "size", "a",
    "b", "speed", "temp", "len", "width",
];

fn token(rng: &mut ChaCha8Rng) -> String {
    let n = rng.random_range(0..200);
    let w = *pick(rng, WORDS);
    match rng.random_range(0..15) {
        0 | 1 => w.to_string(),
        2 => w.to_uppercase(),
        3 => {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        }
        4 => format!("{}{}", pick(rng, FIRST).to_lowercase(), n),
        5 => format!(
            "{}.{}",
            pick(rng, FIRST).to_lowercase(),
            pick(rng, LAST).to_lowercase()
        ),
        6 => pick(rng, EMOTICONS).to_string(),
        7 => format!("{} {}", w, pick(rng, EMOTICONS)),
        8 => format!("{}={}&{}={}", pick(rng, VARS), n, pick(rng, VARS), w),
        9 => format!("{}={};{}={}", pick(rng, VARS), n, pick(rng, VARS), n + 1),
        10 => {
            let op = *pick(rng, &["=", "<", ">", "<=", ">=", "!=", "=="]);
            format!("{} {op} {n}", pick(rng, VARS))
        }
        11 => format!(
            "{}={} {} {}={}",
            pick(rng, VARS),
            n,
            pick(rng, &["and", "or", "&", ","]),
            pick(rng, VARS),
            n + 3
        ),
        12 => format!("**{w}** or _{}_", pick(rng, WORDS)),
        13 => format!(
            "{} {} {}",
            n % 20,
            pick(rng, &["and", "or", "to", "&", "-", "x"]),
            n % 20 + rng.random_range(1..10)
        ),
        _ => format!("{w} {}", pick(rng, WORDS)),
    }
}

/// Generates one benign value.
pub fn generate(rng: &mut ChaCha8Rng) -> Sample {
    let kind = *pick(rng, &BenignKind::ALL);
    let text = match kind {
        BenignKind::Name => name(rng),
        BenignKind::Review => review(rng),
        BenignKind::Chat => chat(rng),
        BenignKind::SqlProse => sql_prose(rng),
        BenignKind::Email => email(rng),
        BenignKind::Url => url(rng),
        BenignKind::Json => json(rng),
        BenignKind::Markdown => markdown(rng),
        BenignKind::Code => code(rng),
        BenignKind::Multilingual => multilingual(rng),
        BenignKind::Scalar => scalar(rng),
        BenignKind::Postgrest => postgrest(rng),
        BenignKind::Token => token(rng),
    };
    Sample {
        text,
        label: Label::Benign,
        category: Category::Benign(kind),
    }
}
