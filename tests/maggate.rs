//! MagGate end to end: a real board (hyper CPU, sqlx Storage, MagGate) answering PostgREST
//! requests, checked case by case with one `check` helper: request line, headers and body
//! in; status, headers and JSON out. The same cases run on SQLite, PostgreSQL and MariaDB.

// Test code: a failed setup step should abort the test loudly, helpers included.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use maggate::{GateConfig, MagGate, ReadCacheConfig};
use magmobo::axum::body::{Body, to_bytes};
use magmobo::cache::MokaCache;
use magmobo::cpu::HyperCpu;
use magmobo::prelude::*;
use magmobo::roles::storage::Dialect;
use magmobo::storage::{SqlStorage, StorageOptions};
use magmobo_integration_tests::services::{mysql_or_skip, postgres_or_skip};
use proptest::prelude::*;
use serde_json::{Value as Json, json};

/// The fixture per dialect: `items` (five rows) and, for embedding, `customers`, `orders`
/// (two foreign keys to `customers`, one to `items`), `products` and the junction
/// `order_items`. Constraints are named so relationship names agree across dialects.
fn ddl(d: Dialect) -> Vec<&'static str> {
    match d {
        Dialect::Sqlite => vec![
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, price REAL, \
             qty INTEGER, active BOOLEAN, data JSON)",
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, item_id INTEGER NOT NULL, total REAL, \
             customer_id INTEGER, shipper_id INTEGER, \
             CONSTRAINT orders_item_id_fkey FOREIGN KEY (item_id) REFERENCES items(id), \
             CONSTRAINT orders_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES customers(id), \
             CONSTRAINT orders_shipper_id_fkey FOREIGN KEY (shipper_id) REFERENCES customers(id))",
            "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
            "CREATE TABLE order_items (order_id INTEGER NOT NULL, product_id INTEGER NOT NULL, \
             qty INTEGER, PRIMARY KEY (order_id, product_id), \
             CONSTRAINT order_items_order_id_fkey FOREIGN KEY (order_id) REFERENCES orders(id), \
             CONSTRAINT order_items_product_id_fkey FOREIGN KEY (product_id) REFERENCES products(id))",
        ],
        Dialect::Postgres => vec![
            "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL UNIQUE, price double precision, \
             qty integer, active boolean, data jsonb)",
            "CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL)",
            "CREATE TABLE orders (id serial PRIMARY KEY, item_id integer NOT NULL, total double precision, \
             customer_id integer, shipper_id integer, \
             CONSTRAINT orders_item_id_fkey FOREIGN KEY (item_id) REFERENCES items(id), \
             CONSTRAINT orders_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES customers(id), \
             CONSTRAINT orders_shipper_id_fkey FOREIGN KEY (shipper_id) REFERENCES customers(id))",
            "CREATE TABLE products (id integer PRIMARY KEY, name text NOT NULL)",
            "CREATE TABLE order_items (order_id integer NOT NULL, product_id integer NOT NULL, \
             qty integer, PRIMARY KEY (order_id, product_id), \
             CONSTRAINT order_items_order_id_fkey FOREIGN KEY (order_id) REFERENCES orders(id), \
             CONSTRAINT order_items_product_id_fkey FOREIGN KEY (product_id) REFERENCES products(id))",
            "CREATE FUNCTION add_them(a integer, b integer) RETURNS integer \
             LANGUAGE sql IMMUTABLE AS $$ SELECT a + b $$",
            "CREATE FUNCTION cheap_items(max_price double precision) RETURNS SETOF items \
             LANGUAGE sql STABLE AS $$ SELECT * FROM items WHERE price <= max_price $$",
            "CREATE FUNCTION item_names() RETURNS SETOF text \
             LANGUAGE sql STABLE AS $$ SELECT name FROM items ORDER BY id $$",
            "CREATE FUNCTION price_list(min_price double precision) \
             RETURNS TABLE (item text, cents bigint) \
             LANGUAGE sql STABLE AS $$ SELECT name, (price * 100)::bigint FROM items \
             WHERE price >= min_price $$",
            "CREATE FUNCTION price_range(OUT low double precision, OUT high double precision) \
             LANGUAGE sql STABLE AS $$ SELECT min(price), max(price) FROM items $$",
            "CREATE FUNCTION bump_qty(item integer, amount integer DEFAULT 1) RETURNS integer \
             LANGUAGE sql VOLATILE AS $$ UPDATE items SET qty = coalesce(qty, 0) + amount \
             WHERE id = item RETURNING qty $$",
            "CREATE FUNCTION body_keys(jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS \
             $$ SELECT jsonb_build_object('type', jsonb_typeof($1), 'body', $1) $$",
        ],
        Dialect::MySql => vec![
            "CREATE TABLE items (id INTEGER AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL UNIQUE, \
             price DOUBLE, qty INTEGER, active BOOLEAN, data JSON) ENGINE=InnoDB",
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL) ENGINE=InnoDB",
            "CREATE TABLE orders (id INTEGER AUTO_INCREMENT PRIMARY KEY, item_id INTEGER NOT NULL, total DOUBLE, \
             customer_id INTEGER, shipper_id INTEGER, \
             CONSTRAINT orders_item_id_fkey FOREIGN KEY (item_id) REFERENCES items(id), \
             CONSTRAINT orders_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES customers(id), \
             CONSTRAINT orders_shipper_id_fkey FOREIGN KEY (shipper_id) REFERENCES customers(id)) ENGINE=InnoDB",
            "CREATE TABLE products (id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL) ENGINE=InnoDB",
            "CREATE TABLE order_items (order_id INTEGER NOT NULL, product_id INTEGER NOT NULL, \
             qty INTEGER, PRIMARY KEY (order_id, product_id), \
             CONSTRAINT order_items_order_id_fkey FOREIGN KEY (order_id) REFERENCES orders(id), \
             CONSTRAINT order_items_product_id_fkey FOREIGN KEY (product_id) REFERENCES products(id)) ENGINE=InnoDB",
        ],
    }
}

const SEED: &str = "INSERT INTO items (id, name, price, qty, active, data) VALUES \
    (1, 'apple', 1.5, 10, TRUE, '{\"color\":\"red\",\"size\":3}'), \
    (2, 'banana', 0.25, NULL, FALSE, '{\"color\":\"yellow\"}'), \
    (3, 'cherry', 3.0, 100, TRUE, NULL), \
    (4, 'date', NULL, 5, NULL, '{\"color\":\"brown\"}'), \
    (5, 'elderberry', 7.75, 0, FALSE, '{\"color\":\"black\",\"size\":1}')";

/// Rows for the embedding cases: ann has orders 1 and 2, bob order 3, cid none; order 1
/// holds pen and ink, order 2 ink, order 3 nothing.
const SEED_EMBED: [&str; 4] = [
    "INSERT INTO customers (id, name) VALUES (1, 'ann'), (2, 'bob'), (3, 'cid')",
    "INSERT INTO orders (id, item_id, total, customer_id, shipper_id) VALUES \
     (1, 1, 5.5, 1, 2), (2, 2, 20.25, 1, NULL), (3, 1, 15.75, 2, NULL)",
    "INSERT INTO products (id, name) VALUES (1, 'pen'), (2, 'ink'), (3, 'pad')",
    "INSERT INTO order_items (order_id, product_id, qty) VALUES (1, 1, 2), (1, 2, 1), (2, 2, 5)",
];

static DB_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A booted board serving MagGate over `url`'s database, seeded with the fixture.
async fn board_on(url: &str, config: GateConfig) -> Motherboard {
    board_with(url, MagGate::new(config)).await
}

/// Like [`board_on`], with the gate given (keep its handle first); a RAM slot (moka) is
/// plugged too, for the read cache.
async fn board_with(url: &str, gate: MagGate) -> Motherboard {
    let storage = SqlStorage::connect(url, StorageOptions::default()).unwrap();
    let d = storage.dialect();
    for stmt in ddl(d) {
        storage.execute(stmt, &[]).await.unwrap();
    }
    storage.execute(SEED, &[]).await.unwrap();
    for stmt in SEED_EMBED {
        storage.execute(stmt, &[]).await.unwrap();
    }
    if d == Dialect::Postgres {
        // The ids were given explicitly; move the sequences past them.
        for seq in ["items_id_seq", "orders_id_seq"] {
            storage
                .execute(&format!("SELECT setval('{seq}', 100)"), &[])
                .await
                .unwrap();
        }
    }
    let board = Motherboard::builder()
        .with(HyperCpu::new("127.0.0.1:0".parse().unwrap()))
        .with(storage)
        .with(MokaCache::new(10_000))
        .extension(gate)
        .build()
        .unwrap();
    board.boot().await.unwrap();
    board
}

fn sqlite_url() -> String {
    let n = DB_COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("maggate-{}-{n}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    format!("sqlite://{}", path.display())
}

fn config() -> GateConfig {
    GateConfig {
        max_body_bytes: 4096,
        aggregates_enabled: true,
        schema_poll: None,
        ..GateConfig::default()
    }
}

/// Sends one request through the board's route table (no socket).
async fn send(
    board: &Motherboard,
    line: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, http::HeaderMap, String) {
    let (method, target) = line.split_once(' ').unwrap();
    // Clients percent-encode what a URI cannot carry raw; the gate decodes it.
    let target: String = target
        .chars()
        .map(|c| match c {
            '{' | '}' | '"' | '<' | '>' | '|' | '\\' | '^' | '`' | ' ' => {
                format!("%{:02X}", c as u32)
            }
            c => c.to_string(),
        })
        .collect();
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("/rest/v1{target}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .unwrap();
    let response = board.cpu().unwrap().routes().dispatch(req).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), 1 << 24).await.unwrap();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// One case: request in; status, headers and (when given) JSON body out. For error
/// bodies, only the members given in `expected` are compared.
#[track_caller]
fn check<'a>(
    board: &'a Motherboard,
    line: &'a str,
    headers: &'a [(&'a str, &'a str)],
    body: Option<&'a str>,
    status: u16,
    expected_headers: &'a [(&'a str, &'a str)],
    expected: Option<Json>,
) -> impl std::future::Future<Output = ()> + 'a {
    let caller = std::panic::Location::caller();
    async move {
        let (got, got_headers, text) = send(board, line, headers, body).await;
        let ctx = format!("{line} (case at {caller}) -> {got} {text}");
        assert_eq!(got, status, "{ctx}");
        for (k, v) in expected_headers {
            let h = got_headers.get(*k).and_then(|h| h.to_str().ok());
            assert_eq!(h, Some(*v), "header {k} of {ctx}");
        }
        if text.is_empty() {
            assert!(expected.is_none(), "empty body: {ctx}");
            return;
        }
        assert_eq!(
            got_headers
                .get("content-type")
                .and_then(|h| h.to_str().ok())
                .map(|s| s.ends_with("charset=utf-8")),
            Some(true),
            "{ctx}"
        );
        let Some(expected) = expected else {
            return;
        };
        let got: Json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {ctx}"));
        match (&expected, &got) {
            (Json::Object(want), Json::Object(have)) if have.contains_key("code") => {
                for (k, v) in want {
                    assert_eq!(have.get(k), Some(v), "member {k} of {ctx}");
                }
            }
            _ => assert_eq!(got, expected, "{ctx}"),
        }
    }
}

fn ids(ids: &[i64]) -> Option<Json> {
    Some(Json::Array(
        ids.iter().map(|i| json!({ "id": i })).collect(),
    ))
}

const OBJ: (&str, &str) = ("accept", "application/vnd.pgrst.object+json");

/// Every case, in order: reads first, then writes (each write checks what it changed).
async fn run_cases(b: &Motherboard) {
    // Reads: columns, filters of each family, logic trees.
    check(
        b,
        "GET /items?select=id,name&order=id",
        &[],
        None,
        200,
        &[("content-range", "0-4/*")],
        Some(
            json!([{"id":1,"name":"apple"},{"id":2,"name":"banana"},{"id":3,"name":"cherry"},
                    {"id":4,"name":"date"},{"id":5,"name":"elderberry"}]),
        ),
    )
    .await;
    check(
        b,
        "GET /items?select=id&id=eq.2",
        &[],
        None,
        200,
        &[],
        ids(&[2]),
    )
    .await;
    check(
        b,
        "GET /items?select=id&id=neq.2&order=id",
        &[],
        None,
        200,
        &[],
        ids(&[1, 3, 4, 5]),
    )
    .await;
    check(
        b,
        "GET /items?select=id&qty=gte.10&order=id",
        &[],
        None,
        200,
        &[],
        ids(&[1, 3]),
    )
    .await;
    check(
        b,
        "GET /items?select=id&qty=lt.10&order=id",
        &[],
        None,
        200,
        &[],
        ids(&[4, 5]),
    )
    .await;
    check(
        b,
        "GET /items?select=id&price=gt.1&price=lte.3&order=id",
        &[],
        None,
        200,
        &[],
        ids(&[1, 3]),
    )
    .await;
    check(
        b,
        "GET /items?select=id&name=like.*an*",
        &[],
        None,
        200,
        &[],
        ids(&[2]),
    )
    .await;
    check(
        b,
        "GET /items?select=id&name=like.*AN*",
        &[],
        None,
        200,
        &[],
        ids(&[]),
    )
    .await;
    check(
        b,
        "GET /items?select=id&name=ilike.*AN*",
        &[],
        None,
        200,
        &[],
        ids(&[2]),
    )
    .await;
    check(
        b,
        "GET /items?select=id&id=in.(1,3,5)&order=id",
        &[],
        None,
        200,
        &[],
        ids(&[1, 3, 5]),
    )
    .await;
    check(
        b,
        "GET /items?select=id&qty=is.null",
        &[],
        None,
        200,
        &[],
        ids(&[2]),
    )
    .await;
    check(
        b,
        "GET /items?select=id&active=is.true&order=id",
        &[],
        None,
        200,
        &[],
        ids(&[1, 3]),
    )
    .await;
    check(
        b,
        "GET /items?select=id&active=isdistinct.true&order=id",
        &[],
        None,
        200,
        &[],
        ids(&[2, 4, 5]),
    )
    .await;
    check(
        b,
        "GET /items?select=id&id=not.in.(1,2,3)&order=id",
        &[],
        None,
        200,
        &[],
        ids(&[4, 5]),
    )
    .await;
    check(
        b,
        "GET /items?select=id&id=eq(any).{2,4}&order=id",
        &[],
        None,
        200,
        &[],
        ids(&[2, 4]),
    )
    .await;
    check(
        b,
        "GET /items?select=id&name=like(any).{a*,b*}&order=id",
        &[],
        None,
        200,
        &[],
        ids(&[1, 2]),
    )
    .await;
    check(
        b,
        "GET /items?select=id&or=(id.eq.1,name.eq.cherry)&order=id",
        &[],
        None,
        200,
        &[],
        ids(&[1, 3]),
    )
    .await;
    check(
        b,
        "GET /items?select=id&or=(and(qty.gte.5,active.is.true),id.eq.5)&order=id",
        &[],
        None,
        200,
        &[],
        ids(&[1, 3, 5]),
    )
    .await;
    check(
        b,
        "GET /items?select=id&not.or=(id.eq.1,id.eq.2)&order=id",
        &[],
        None,
        200,
        &[],
        ids(&[3, 4, 5]),
    )
    .await;
    check(
        b,
        "GET /items?select=id,active&id=eq.4",
        &[],
        None,
        200,
        &[],
        Some(json!([{"id":4,"active":null}])),
    )
    .await;
    // JSON paths, renames, casts.
    check(
        b,
        "GET /items?select=id,color:data->>color&data->>color=eq.red",
        &[],
        None,
        200,
        &[],
        Some(json!([{"id":1,"color":"red"}])),
    )
    .await;
    check(
        b,
        "GET /items?select=id,data->size&id=eq.1",
        &[],
        None,
        200,
        &[],
        Some(json!([{"id":1,"size":3}])),
    )
    .await;
    check(
        b,
        "GET /items?select=ident:id::text,active&id=eq.3",
        &[],
        None,
        200,
        &[],
        Some(json!([{"ident":"3","active":true}])),
    )
    .await;
    // Order, pagination, counts.
    check(
        b,
        "GET /items?select=id&order=qty.desc.nullslast",
        &[],
        None,
        200,
        &[],
        ids(&[3, 1, 4, 5, 2]),
    )
    .await;
    check(
        b,
        "GET /items?select=id&order=qty.desc.nullsfirst",
        &[],
        None,
        200,
        &[],
        ids(&[2, 3, 1, 4, 5]),
    )
    .await;
    check(
        b,
        "GET /items?select=id&order=id&limit=2&offset=1",
        &[],
        None,
        200,
        &[("content-range", "1-2/*")],
        ids(&[2, 3]),
    )
    .await;
    check(
        b,
        "GET /items?select=id&order=id",
        &[("range", "0-1")],
        None,
        200,
        &[("content-range", "0-1/*")],
        ids(&[1, 2]),
    )
    .await;
    check(
        b,
        "GET /items?select=id&order=id&limit=2",
        &[("prefer", "count=exact")],
        None,
        206,
        &[("content-range", "0-1/5")],
        ids(&[1, 2]),
    )
    .await;
    check(
        b,
        "GET /items?select=id&order=id",
        &[("prefer", "count=exact")],
        None,
        200,
        &[("content-range", "0-4/5")],
        ids(&[1, 2, 3, 4, 5]),
    )
    .await;
    check(
        b,
        "GET /items?limit=0",
        &[("prefer", "count=exact")],
        None,
        206,
        &[("content-range", "*/5")],
        ids(&[]),
    )
    .await;
    check(
        b,
        "GET /items?offset=10",
        &[("prefer", "count=exact")],
        None,
        416,
        &[("content-range", "*/5")],
        Some(json!({"code":"PGRST103"})),
    )
    .await;
    check(
        b,
        "GET /items",
        &[("range", "5-1")],
        None,
        416,
        &[],
        Some(json!({"code":"PGRST103"})),
    )
    .await;
    check(
        b,
        "GET /items?select=id&id=eq.99",
        &[],
        None,
        200,
        &[("content-range", "*/*")],
        ids(&[]),
    )
    .await;
    check(
        b,
        "HEAD /items?select=id",
        &[],
        None,
        200,
        &[("content-range", "0-4/*")],
        None,
    )
    .await;
    // Singular objects and media types.
    check(
        b,
        "GET /items?select=id,name&id=eq.1",
        &[OBJ],
        None,
        200,
        &[(
            "content-type",
            "application/vnd.pgrst.object+json; charset=utf-8",
        )],
        Some(json!({"id":1,"name":"apple"})),
    )
    .await;
    check(
        b,
        "GET /items?select=id",
        &[OBJ],
        None,
        406,
        &[],
        Some(json!({"code":"PGRST116","details":"The result contains 5 rows"})),
    )
    .await;
    check(
        b,
        "GET /items",
        &[("accept", "application/xml")],
        None,
        406,
        &[],
        Some(json!({"code":"PGRST107"})),
    )
    .await;
    // Errors with PostgREST's shapes.
    check(
        b,
        "GET /itemz",
        &[],
        None,
        404,
        &[],
        // The schema name in the hint differs per dialect; the code is what matters.
        Some(json!({"code":"PGRST205"})),
    )
    .await;
    check(
        b,
        "GET /items?select=nmae",
        &[],
        None,
        400,
        &[],
        Some(json!({"code":"42703",
        "message":"column items.nmae does not exist",
        "hint":"Perhaps you meant to reference the column \"items.name\"."})),
    )
    .await;
    check(
        b,
        "GET /items?id=eq.abc",
        &[],
        None,
        400,
        &[],
        Some(json!({"code":"22P02"})),
    )
    .await;
    check(
        b,
        "GET /items?id=foo.1",
        &[],
        None,
        400,
        &[],
        Some(json!({"code":"PGRST100"})),
    )
    .await;
    check(
        b,
        "GET /items?orders.id=eq.1",
        &[],
        None,
        400,
        &[],
        Some(json!({"code":"PGRST108"})),
    )
    .await;
    check(
        b,
        "TRACE /items",
        &[],
        None,
        405,
        &[],
        Some(json!({"code":"PGRST117"})),
    )
    .await;

    // Inserts.
    let rep = ("prefer", "return=representation");
    check(
        b,
        "POST /items",
        &[],
        Some(r#"{"id":6,"name":"fig","qty":1}"#),
        201,
        &[("content-range", "*/*")],
        None,
    )
    .await;
    check(
        b,
        "POST /items?select=id,name",
        &[rep],
        Some(r#"{"id":7,"name":"grape"}"#),
        201,
        &[],
        Some(json!([{"id":7,"name":"grape"}])),
    )
    .await;
    check(
        b,
        "POST /items?select=id,name,active",
        &[rep],
        Some(r#"[{"id":8,"name":"honeydew","active":true},{"id":9,"name":"kiwi","active":false}]"#),
        201,
        &[],
        Some(
            json!([{"id":8,"name":"honeydew","active":true},{"id":9,"name":"kiwi","active":false}]),
        ),
    )
    .await;
    check(
        b,
        "POST /items",
        &[("prefer", "return=headers-only")],
        Some(r#"{"id":10,"name":"lime"}"#),
        201,
        &[("location", "/items?id=eq.10")],
        None,
    )
    .await;
    check(
        b,
        "POST /items?columns=id,name&select=id,qty",
        &[rep],
        Some(r#"{"id":11,"name":"mango","qty":9}"#),
        201,
        &[],
        Some(json!([{"id":11,"qty":null}])),
    )
    .await;
    check(
        b,
        "POST /items?select=id,data",
        &[rep],
        Some(r#"{"id":12,"name":"nut","data":{"a":[1,2]}}"#),
        201,
        &[],
        Some(json!([{"id":12,"data":{"a":[1,2]}}])),
    )
    .await;
    check(
        b,
        "POST /items",
        &[],
        Some(r#"{"id":13,"name":"apple"}"#),
        409,
        &[],
        Some(json!({"code":"23505"})),
    )
    .await;
    check(
        b,
        "POST /items",
        &[],
        Some(r#"{"id":13,"name":null}"#),
        400,
        &[],
        Some(json!({"code":"23502"})),
    )
    .await;
    check(
        b,
        "POST /items",
        &[],
        Some(r#"{"id":13,"name":"#),
        400,
        &[],
        Some(json!({"code":"PGRST102"})),
    )
    .await;
    check(
        b,
        "POST /items",
        &[],
        Some(r#"[{"id":13,"name":"a"},{"id":14}]"#),
        400,
        &[],
        Some(json!({"code":"PGRST102","details":"All object keys must match"})),
    )
    .await;
    check(
        b,
        "POST /items",
        &[],
        Some(r#"{"id":13,"colour":"red"}"#),
        400,
        &[],
        Some(json!({"code":"PGRST204",
            "message":"Could not find the 'colour' column of 'items' in the schema cache"})),
    )
    .await;
    check(
        b,
        "POST /items",
        &[],
        Some(r#"{"id":"x","name":"q"}"#),
        400,
        &[],
        Some(json!({"code":"22P02"})),
    )
    .await;
    let big = format!(r#"{{"id":13,"name":"{}"}}"#, "x".repeat(5000));
    check(
        b,
        "POST /items",
        &[],
        Some(&big),
        413,
        &[],
        Some(json!({"code":"MG413"})),
    )
    .await;
    check(
        b,
        "POST /orders",
        &[],
        Some(r#"{"item_id":999,"total":1}"#),
        409,
        &[],
        Some(json!({"code":"23503"})),
    )
    .await;
    check(
        b,
        "GET /items?select=id&id=gte.6&order=id",
        &[],
        None,
        200,
        &[],
        ids(&[6, 7, 8, 9, 10, 11, 12]),
    )
    .await;

    // Updates and deletes.
    check(
        b,
        "PATCH /items?id=eq.6",
        &[],
        Some(r#"{"qty":42,"active":true}"#),
        204,
        &[("content-range", "0-0/*")],
        None,
    )
    .await;
    check(
        b,
        "GET /items?select=id,qty,active&id=eq.6",
        &[],
        None,
        200,
        &[],
        Some(json!([{"id":6,"qty":42,"active":true}])),
    )
    .await;
    check(
        b,
        "PATCH /items",
        &[],
        Some(r#"{"qty":1}"#),
        400,
        &[],
        Some(json!({"code":"21000"})),
    )
    .await;
    check(
        b,
        "DELETE /items",
        &[],
        None,
        400,
        &[],
        Some(json!({"code":"21000",
        "message":"DELETE requires a WHERE clause"})),
    )
    .await;
    check(
        b,
        "PATCH /items?id=eq.6",
        &[],
        Some(r#"{"qty":"many"}"#),
        400,
        &[],
        Some(json!({"code":"22P02"})),
    )
    .await;
    check(
        b,
        "DELETE /items?id=gte.6",
        &[("prefer", "handling=strict, max-affected=2")],
        None,
        400,
        &[],
        Some(json!({"code":"PGRST124","details":"The query affects 7 rows"})),
    )
    .await;
    check(
        b,
        "GET /items?select=id&id=gte.6",
        &[("prefer", "count=exact")],
        None,
        200,
        &[("content-range", "0-6/7")],
        None,
    )
    .await;
    check(
        b,
        "DELETE /items?id=in.(6,7)&select=id,name&order=id",
        &[rep],
        None,
        200,
        &[("content-range", "0-1/*")],
        Some(json!([{"id":6,"name":"fig"},{"id":7,"name":"grape"}])),
    )
    .await;
    check(
        b,
        "DELETE /items?id=gte.8",
        &[],
        None,
        204,
        &[("content-range", "0-4/*")],
        None,
    )
    .await;
    check(
        b,
        "DELETE /items?id=eq.8",
        &[],
        None,
        204,
        &[("content-range", "*/*")],
        None,
    )
    .await;
    check(
        b,
        "GET /items?select=id&order=id",
        &[],
        None,
        200,
        &[],
        ids(&[1, 2, 3, 4, 5]),
    )
    .await;
}

/// Resource embedding: to-one objects, to-many arrays, many-to-many through a junction,
/// `!inner`, hints, spreads, scoped filters/order/limit, and the relationship errors.
async fn embedding_cases(b: &Motherboard) {
    check(
        b,
        "GET /items?select=id,orders(id)&id=lte.2&order=id&orders.order=id",
        &[],
        None,
        200,
        &[],
        Some(json!([{"id":1,"orders":[{"id":1},{"id":3}]},{"id":2,"orders":[{"id":2}]}])),
    )
    .await;
    check(
        b,
        "GET /orders?select=id,customer:customers!customer_id(name)&order=id",
        &[],
        None,
        200,
        &[],
        Some(
            json!([{"id":1,"customer":{"name":"ann"}},{"id":2,"customer":{"name":"ann"}},
                    {"id":3,"customer":{"name":"bob"}}]),
        ),
    )
    .await;
    check(
        b,
        "GET /orders?select=id,shipper:customers!orders_shipper_id_fkey(name)&order=id",
        &[],
        None,
        200,
        &[],
        Some(
            json!([{"id":1,"shipper":{"name":"bob"}},{"id":2,"shipper":null},
                    {"id":3,"shipper":null}]),
        ),
    )
    .await;
    check(
        b,
        "GET /customers?select=name,orders!customer_id(id,total)&order=id&orders.order=id",
        &[],
        None,
        200,
        &[],
        Some(
            json!([{"name":"ann","orders":[{"id":1,"total":5.5},{"id":2,"total":20.25}]},
                    {"name":"bob","orders":[{"id":3,"total":15.75}]},
                    {"name":"cid","orders":[]}]),
        ),
    )
    .await;
    check(
        b,
        "GET /customers?select=name,orders!customer_id(id)&order=id&orders.order=total.desc&orders.limit=1",
        &[],
        None,
        200,
        &[],
        Some(json!([{"name":"ann","orders":[{"id":2}]},{"name":"bob","orders":[{"id":3}]},
                    {"name":"cid","orders":[]}])),
    )
    .await;
    check(
        b,
        "GET /customers?select=name,orders!customer_id(id)&order=id&orders.total=lt.10",
        &[],
        None,
        200,
        &[],
        Some(
            json!([{"name":"ann","orders":[{"id":1}]},{"name":"bob","orders":[]},
                    {"name":"cid","orders":[]}]),
        ),
    )
    .await;
    check(
        b,
        "GET /customers?select=name,orders!customer_id!inner(id)&orders.total=gt.10&order=id",
        &[("prefer", "count=exact")],
        None,
        200,
        &[("content-range", "0-1/2")],
        Some(json!([{"name":"ann","orders":[{"id":2}]},{"name":"bob","orders":[{"id":3}]}])),
    )
    .await;
    check(
        b,
        "GET /orders?select=id,customer:customers!customer_id(name)&order=customer(name).desc,id",
        &[],
        None,
        200,
        &[],
        Some(
            json!([{"id":3,"customer":{"name":"bob"}},{"id":1,"customer":{"name":"ann"}},
                    {"id":2,"customer":{"name":"ann"}}]),
        ),
    )
    .await;
    check(
        b,
        "GET /customers?select=id,orders!customer_id(id)&order=orders(id)",
        &[],
        None,
        400,
        &[],
        Some(json!({"code":"PGRST118"})),
    )
    .await;
    check(
        b,
        "GET /customers?select=name,orders!customer_id(id)&orders=is.null&order=id",
        &[],
        None,
        200,
        &[],
        Some(json!([{"name":"cid","orders":[]}])),
    )
    .await;
    check(
        b,
        "GET /customers?select=name,o:orders!customer_id(id)&o=not.is.null&o.total=gt.10&order=id",
        &[],
        None,
        200,
        &[],
        Some(json!([{"name":"ann","o":[{"id":2}]},{"name":"bob","o":[{"id":3}]}])),
    )
    .await;
    check(
        b,
        "GET /orders?select=id,products(name)&order=id&products.order=id",
        &[],
        None,
        200,
        &[],
        Some(json!([{"id":1,"products":[{"name":"pen"},{"name":"ink"}]},
                    {"id":2,"products":[{"name":"ink"}]},{"id":3,"products":[]}])),
    )
    .await;
    check(
        b,
        "GET /customers?select=name,orders!customer_id(id,products(name))&id=eq.1\
         &orders.order=id&orders.products.order=id",
        &[],
        None,
        200,
        &[],
        Some(json!([{"name":"ann","orders":[
            {"id":1,"products":[{"name":"pen"},{"name":"ink"}]},
            {"id":2,"products":[{"name":"ink"}]}]}])),
    )
    .await;
    check(
        b,
        "GET /orders?select=id,...customers!customer_id(customer:name)&order=id",
        &[],
        None,
        200,
        &[],
        Some(
            json!([{"id":1,"customer":"ann"},{"id":2,"customer":"ann"},{"id":3,"customer":"bob"}]),
        ),
    )
    .await;
    check(
        b,
        "GET /orders?select=id,item:items(active,data)&id=eq.2",
        &[OBJ],
        None,
        200,
        &[],
        Some(json!({"id":2,"item":{"active":false,"data":{"color":"yellow"}}})),
    )
    .await;
    check(
        b,
        "GET /orders?select=id,...items(active,data)&id=eq.1",
        &[],
        None,
        200,
        &[],
        Some(json!([{"id":1,"active":true,"data":{"color":"red","size":3}}])),
    )
    .await;
    check(
        b,
        "GET /orders?select=id,customers(name)",
        &[],
        None,
        300,
        &[],
        Some(json!({
            "code": "PGRST201",
            "message": "Could not embed because more than one relationship was found for 'orders' and 'customers'",
            "details": [
                {"cardinality":"many-to-one","embedding":"orders with customers",
                 "relationship":"orders_customer_id_fkey using orders(customer_id) and customers(id)"},
                {"cardinality":"many-to-one","embedding":"orders with customers",
                 "relationship":"orders_shipper_id_fkey using orders(shipper_id) and customers(id)"}
            ],
            "hint": "Try changing 'customers' to one of the following: 'customers!orders_customer_id_fkey', \
                     'customers!orders_shipper_id_fkey'. Find the desired relationship in the 'details' key."
        })),
    )
    .await;
    check(
        b,
        "GET /customers?select=*,products(*)",
        &[],
        None,
        400,
        &[],
        Some(json!({"code":"PGRST200",
            "message":"Could not find a relationship between 'customers' and 'products' in the schema cache"})),
    )
    .await;
    check(
        b,
        "GET /customers?select=*,...orders!customer_id(id)",
        &[],
        None,
        400,
        &[],
        Some(json!({"code":"PGRST119"})),
    )
    .await;
    check(
        b,
        "GET /customers?select=*,orders!customer_id(id)&products.id=eq.1",
        &[],
        None,
        400,
        &[],
        Some(json!({"code":"PGRST108"})),
    )
    .await;
}

/// Embedding in the response of a write (POST, PATCH, DELETE, upserts), as supabase-js's
/// `.insert(row).select('*, rel(col)')` asks for it: the same answer as a read of the
/// written rows, on every storage. Uses its own rows (ids 9xx) and removes them.
async fn write_embedding_cases(b: &Motherboard) {
    let rep = ("prefer", "return=representation");
    check(
        b,
        "POST /items",
        &[],
        Some(r#"{"id":950,"name":"wr-item"}"#),
        201,
        &[],
        None,
    )
    .await;
    // One-to-many: new customers have no orders yet.
    check(
        b,
        "POST /customers?select=id,name,orders!customer_id(id)",
        &[rep],
        Some(r#"[{"id":901,"name":"wen"},{"id":902,"name":"xia"}]"#),
        201,
        &[("content-range", "*/*")],
        Some(json!([{"id":901,"name":"wen","orders":[]},{"id":902,"name":"xia","orders":[]}])),
    )
    .await;
    // Many-to-one, twice, one through an alias and a hint.
    check(
        b,
        "POST /orders?select=id,total,customer:customers!customer_id(name),items(name)",
        &[rep],
        Some(
            r#"[{"id":901,"item_id":950,"total":1.5,"customer_id":901},
                {"id":902,"item_id":950,"total":2.5,"customer_id":901}]"#,
        ),
        201,
        &[],
        Some(json!([
            {"id":901,"total":1.5,"customer":{"name":"wen"},"items":{"name":"wr-item"}},
            {"id":902,"total":2.5,"customer":{"name":"wen"},"items":{"name":"wr-item"}}
        ])),
    )
    .await;
    // PATCH: the row as it is after the update, its embedded rows filtered and ordered.
    check(
        b,
        "PATCH /customers?id=eq.901&select=id,name,orders!customer_id(id,total)&orders.order=id.desc&orders.total=gt.2",
        &[rep],
        Some(r#"{"name":"wendy"}"#),
        200,
        &[("content-range", "0-0/*")],
        Some(json!([{"id":901,"name":"wendy","orders":[{"id":902,"total":2.5}]}])),
    )
    .await;
    // The root filter chose the rows; they are answered even though the update moved them
    // out of it. Spread and root `order` as in a read.
    check(
        b,
        "PATCH /orders?customer_id=eq.901&select=id,customer_id,...customers!customer_id(name)&order=id.desc",
        &[rep],
        Some(r#"{"customer_id":902}"#),
        200,
        &[("content-range", "0-1/*")],
        Some(json!([{"id":902,"customer_id":902,"name":"xia"},{"id":901,"customer_id":902,"name":"xia"}])),
    )
    .await;
    check(
        b,
        "PATCH /orders?id=eq.901&select=id,total,customer:customers!customer_id(id)",
        &[rep, OBJ],
        Some(r#"{"total":3.5}"#),
        200,
        &[],
        Some(json!({"id":901,"total":3.5,"customer":{"id":902}})),
    )
    .await;
    // max-affected is checked before the answer, and the whole write is undone.
    check(
        b,
        "PATCH /orders?customer_id=eq.902&select=id,customers!customer_id(name)",
        &[(
            "prefer",
            "return=representation, handling=strict, max-affected=1",
        )],
        Some(r#"{"total":0.5}"#),
        400,
        &[],
        Some(json!({"code":"PGRST124"})),
    )
    .await;
    // Upsert: merged into an existing row (200), answered with its embedding.
    check(
        b,
        "POST /orders?select=id,total,customer:customers!customer_id(name)",
        &[(
            "prefer",
            "return=representation, resolution=merge-duplicates",
        )],
        Some(r#"{"id":902,"item_id":950,"total":4.5,"customer_id":901}"#),
        200,
        &[],
        Some(json!([{"id":902,"total":4.5,"customer":{"name":"wendy"}}])),
    )
    .await;
    // An unknown relation is the read's error, and nothing is written.
    let unknown = json!({"code":"PGRST200"});
    check(
        b,
        "GET /customers?select=id,nope(id)",
        &[],
        None,
        400,
        &[],
        Some(unknown.clone()),
    )
    .await;
    check(
        b,
        "POST /customers?select=id,nope(id)",
        &[rep],
        Some(r#"{"id":903,"name":"yan"}"#),
        400,
        &[],
        Some(unknown.clone()),
    )
    .await;
    check(
        b,
        "PATCH /customers?id=eq.901&select=id,nope(id)",
        &[rep],
        Some(r#"{"name":"zed"}"#),
        400,
        &[],
        Some(unknown.clone()),
    )
    .await;
    check(
        b,
        "DELETE /orders?id=eq.901&select=id,customers!nope(id)",
        &[rep],
        None,
        400,
        &[],
        Some(unknown),
    )
    .await;
    check(
        b,
        "PATCH /customers?id=eq.901&select=id,orders!customer_id(id)&nope.id=eq.1",
        &[rep],
        Some(r#"{"name":"zed"}"#),
        400,
        &[],
        Some(json!({"code":"PGRST108"})),
    )
    .await;
    check(
        b,
        "GET /customers?id=gte.901&select=id,name,orders!customer_id(id,total)&order=id&orders.order=id",
        &[],
        None,
        200,
        &[],
        Some(json!([
            {"id":901,"name":"wendy","orders":[{"id":902,"total":4.5}]},
            {"id":902,"name":"xia","orders":[{"id":901,"total":3.5}]}
        ])),
    )
    .await;
    // DELETE answers the rows as they were, embedding included, then they are gone.
    check(
        b,
        "DELETE /orders?id=in.(901,902)&select=id,customer:customers!customer_id(name),items(id)&order=id",
        &[rep],
        None,
        200,
        &[("content-range", "0-1/*")],
        Some(json!([
            {"id":901,"customer":{"name":"xia"},"items":{"id":950}},
            {"id":902,"customer":{"name":"wendy"},"items":{"id":950}}
        ])),
    )
    .await;
    check(
        b,
        "GET /orders?id=in.(901,902)",
        &[],
        None,
        200,
        &[],
        Some(json!([])),
    )
    .await;
    // `order=` orders a write's representation too, and an unknown relation under a
    // failed write leaves nothing behind.
    check(
        b,
        "POST /customers?select=id,name&order=id.desc",
        &[rep],
        Some(r#"[{"id":903,"name":"c3"},{"id":904,"name":"c4"}]"#),
        201,
        &[],
        Some(json!([{"id":904,"name":"c4"},{"id":903,"name":"c3"}])),
    )
    .await;
    check(
        b,
        "DELETE /customers?id=in.(903,904)&select=id&order=id.desc",
        &[rep],
        None,
        200,
        &[("content-range", "0-1/*")],
        Some(json!([{"id":904},{"id":903}])),
    )
    .await;
    check(
        b,
        "DELETE /customers?id=in.(901,902)&select=name,orders!customer_id(id)&order=id",
        &[rep],
        None,
        200,
        &[],
        Some(json!([{"name":"wendy","orders":[]},{"name":"xia","orders":[]}])),
    )
    .await;
    check(b, "DELETE /items?id=eq.950", &[], None, 204, &[], None).await;
}

/// Upserts: `resolution=merge-duplicates|ignore-duplicates`, `on_conflict=`; 201 when a row
/// was inserted, 200 when every row already existed.
async fn upsert_cases(b: &Motherboard) {
    let merge = ("prefer", "resolution=merge-duplicates");
    let ignore = ("prefer", "resolution=ignore-duplicates");
    let rep = ("prefer", "return=representation");
    check(
        b,
        "POST /customers?select=id,name",
        &[rep, merge],
        Some(r#"[{"id":1,"name":"anna"},{"id":4,"name":"dan"}]"#),
        201,
        &[(
            "preference-applied",
            "return=representation, resolution=merge-duplicates",
        )],
        Some(json!([{"id":1,"name":"anna"},{"id":4,"name":"dan"}])),
    )
    .await;
    check(
        b,
        "POST /customers",
        &[merge],
        Some(r#"{"id":2,"name":"bobby"}"#),
        200,
        &[("preference-applied", "resolution=merge-duplicates")],
        None,
    )
    .await;
    check(
        b,
        "POST /customers",
        &[ignore],
        Some(r#"[{"id":3,"name":"zed"},{"id":5,"name":"eve"}]"#),
        201,
        &[],
        None,
    )
    .await;
    check(
        b,
        "POST /customers",
        &[ignore],
        Some(r#"{"id":5,"name":"eva"}"#),
        200,
        &[],
        None,
    )
    .await;
    check(
        b,
        "GET /customers?select=id,name&order=id",
        &[],
        None,
        200,
        &[],
        Some(
            json!([{"id":1,"name":"anna"},{"id":2,"name":"bobby"},{"id":3,"name":"cid"},
                    {"id":4,"name":"dan"},{"id":5,"name":"eve"}]),
        ),
    )
    .await;
    check(
        b,
        "PUT /customers?id=eq.6",
        &[],
        Some(r#"{"id":6,"name":"fay"}"#),
        201,
        &[],
        None,
    )
    .await;
    check(
        b,
        "PUT /customers?id=eq.6&select=id,name",
        &[rep],
        Some(r#"{"id":6,"name":"faye"}"#),
        200,
        &[],
        Some(json!([{"id":6,"name":"faye"}])),
    )
    .await;
    check(
        b,
        "PUT /customers?id=eq.6",
        &[],
        Some(r#"{"id":7,"name":"x"}"#),
        400,
        &[],
        Some(json!({"code":"PGRST115"})),
    )
    .await;
    check(
        b,
        "PUT /customers?name=eq.x",
        &[],
        Some(r#"{"id":7,"name":"x"}"#),
        405,
        &[],
        Some(json!({"code":"PGRST105"})),
    )
    .await;
    check(
        b,
        "POST /items?on_conflict=name",
        &[merge],
        Some(r#"{"name":"apple","qty":77}"#),
        200,
        &[],
        None,
    )
    .await;
    check(
        b,
        "GET /items?select=id,qty&name=eq.apple",
        &[],
        None,
        200,
        &[],
        Some(json!([{"id":1,"qty":77}])),
    )
    .await;
    check(
        b,
        "POST /items?on_conflict=nmae",
        &[merge],
        Some(r#"{"name":"apple"}"#),
        400,
        &[],
        Some(json!({"code":"42703"})),
    )
    .await;
}

/// RPC: on PostgreSQL, GET and POST calls of scalar and set-returning functions (the
/// latter filtered, ordered and embedded like a table); elsewhere a clear 400.
async fn rpc_cases(b: &Motherboard, d: Dialect) {
    if d != Dialect::Postgres {
        check(
            b,
            "GET /rpc/add_them?a=1&b=2",
            &[],
            None,
            400,
            &[],
            Some(json!({"code":"PGRST127"})),
        )
        .await;
        return;
    }
    check(
        b,
        "GET /rpc/add_them?a=1&b=2",
        &[],
        None,
        200,
        &[],
        Some(json!(3)),
    )
    .await;
    check(
        b,
        "POST /rpc/add_them",
        &[],
        Some(r#"{"a":4,"b":5}"#),
        200,
        &[],
        Some(json!(9)),
    )
    .await;
    // One unnamed json/jsonb parameter takes the whole body, whatever JSON it is.
    check(
        b,
        "POST /rpc/body_keys",
        &[],
        Some(r#"{"a":1,"nested":{"b":[true]}}"#),
        200,
        &[],
        Some(json!({"type":"object","body":{"a":1,"nested":{"b":[true]}}})),
    )
    .await;
    check(
        b,
        "POST /rpc/body_keys",
        &[],
        Some("[1,2,3]"),
        200,
        &[],
        Some(json!({"type":"array","body":[1,2,3]})),
    )
    .await;
    check(
        b,
        "GET /rpc/cheap_items?max_price=2&select=id,name&order=id",
        &[],
        None,
        200,
        &[("content-range", "0-1/*")],
        Some(json!([{"id":1,"name":"apple"},{"id":2,"name":"banana"}])),
    )
    .await;
    check(
        b,
        "GET /rpc/cheap_items?max_price=10&select=id&id=gt.2&order=price.desc&limit=1",
        &[],
        None,
        200,
        &[],
        ids(&[5]),
    )
    .await;
    check(
        b,
        "POST /rpc/cheap_items?select=id,orders(id)&order=id&orders.order=id",
        &[],
        Some(r#"{"max_price":2}"#),
        200,
        &[],
        Some(json!([{"id":1,"orders":[{"id":1},{"id":3}]},{"id":2,"orders":[{"id":2}]}])),
    )
    .await;
    check(
        b,
        "GET /rpc/item_names",
        &[],
        None,
        200,
        &[],
        Some(json!(["apple", "banana", "cherry", "date", "elderberry"])),
    )
    .await;
    check(
        b,
        "POST /rpc/bump_qty",
        &[],
        Some(r#"{"item":3}"#),
        200,
        &[],
        Some(json!(101)),
    )
    .await;
    check(
        b,
        "GET /rpc/bump_qty?item=3",
        &[],
        None,
        405,
        &[],
        Some(json!({"code":"25006"})),
    )
    .await;
    check(
        b,
        "GET /rpc/nope",
        &[],
        None,
        404,
        &[],
        Some(json!({"code":"PGRST202",
            "message":"Could not find the function public.nope() in the schema cache"})),
    )
    .await;
    check(
        b,
        "GET /rpc/add_them?a=1",
        &[],
        None,
        404,
        &[],
        Some(json!({"code":"PGRST202"})),
    )
    .await;
    check(
        b,
        "GET /rpc/add_them?a=x&b=1",
        &[],
        None,
        400,
        &[],
        Some(json!({"code":"22P02"})),
    )
    .await;
    check(
        b,
        "GET /rpc/item_names?order=id",
        &[],
        None,
        400,
        &[],
        Some(json!({"code":"PGRST127"})),
    )
    .await;
    // RETURNS TABLE (...): its columns take select, filters, order and limits.
    check(
        b,
        "GET /rpc/price_list?min_price=0&select=item&cents=gte.200&order=cents.desc&limit=2",
        &[],
        None,
        200,
        &[("content-range", "0-1/*")],
        Some(json!([{"item":"elderberry"},{"item":"cherry"}])),
    )
    .await;
    check(
        b,
        "POST /rpc/price_list?item=like.*rr*&order=item",
        &[],
        Some(r#"{"min_price":0}"#),
        200,
        &[],
        Some(json!([{"item":"cherry","cents":300},{"item":"elderberry","cents":775}])),
    )
    .await;
    check(
        b,
        "GET /rpc/price_list?min_price=0&nope=eq.1",
        &[],
        None,
        400,
        &[],
        Some(json!({"code":"42703"})),
    )
    .await;
    // OUT parameters: one row, as an object.
    check(
        b,
        "GET /rpc/price_range",
        &[],
        None,
        200,
        &[],
        Some(json!({"low":0.25,"high":7.75})),
    )
    .await;
}

/// Operators and writes that differ per dialect: supported where the database can do them,
/// a clear 400 (PGRST127) where it cannot.
/// Aggregates in `select` (PostgREST's implicit GROUP BY over the other selected columns),
/// on `orders` and `order_items`, which the earlier cases do not change.
async fn aggregate_cases(b: &Motherboard) {
    let cases: [(&str, u16, Json); 8] = [
        ("GET /orders?select=count()", 200, json!([{"count":3}])),
        ("GET /orders?select=total.sum()", 200, json!([{"sum":41.5}])),
        (
            "GET /orders?select=customer_id,count()&order=customer_id",
            200,
            json!([{"customer_id":1,"count":2},{"customer_id":2,"count":1}]),
        ),
        (
            "GET /orders?select=customer_id,biggest:total.max()&order=customer_id.desc",
            200,
            json!([{"customer_id":2,"biggest":15.75},{"customer_id":1,"biggest":20.25}]),
        ),
        (
            "GET /orders?select=n:count(),total.min()&item_id=eq.1",
            200,
            json!([{"n":2,"min":5.5}]),
        ),
        (
            "GET /order_items?select=order_id,qty.avg()&order=order_id",
            200,
            json!([{"order_id":1,"avg":1.5},{"order_id":2,"avg":5.0}]),
        ),
        (
            "GET /order_items?select=qty.sum()::text",
            200,
            json!([{"sum":"8"}]),
        ),
        (
            "GET /orders?select=item_id,total.sum(),items(name)&order=item_id",
            200,
            json!([
                {"item_id":1,"sum":21.25,"items":{"name":"apple"}},
                {"item_id":2,"sum":20.25,"items":{"name":"banana"}}
            ]),
        ),
    ];
    for (line, status, body) in cases {
        check(b, line, &[], None, status, &[], Some(body)).await;
    }
    check(
        b,
        "PATCH /orders?id=eq.999&select=total.sum()",
        &[("prefer", "return=representation")],
        Some(r#"{"total":1}"#),
        400,
        &[],
        Some(json!({"code":"PGRST127"})),
    )
    .await;
}

/// Sends `line` and compares the JSON array it answers with `expected` in any order (for
/// grouped answers without a usable `order=`: PostgREST cannot order by an aggregate or
/// an embedded resource either).
#[track_caller]
fn check_unordered<'a>(
    b: &'a Motherboard,
    line: &'a str,
    expected: Json,
) -> impl std::future::Future<Output = ()> + 'a {
    let caller = std::panic::Location::caller();
    async move {
        let (status, _, text) = send(b, line, &[], None).await;
        let ctx = format!("{line} (case at {caller}) -> {status} {text}");
        assert_eq!(status, 200, "{ctx}");
        let sorted = |j: Json| {
            let mut rows: Vec<String> = j
                .as_array()
                .unwrap_or_else(|| panic!("not an array: {ctx}"))
                .iter()
                .map(Json::to_string)
                .collect();
            rows.sort();
            rows
        };
        let got: Json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {ctx}"));
        assert_eq!(sorted(got), sorted(expected), "{ctx}");
    }
}

/// Aggregates inside embedded resources (grouped within the embedded level, per parent)
/// and beside them (the embedded resources and spread columns are grouping terms), as
/// PostgREST 12 answers them (earlier cases renamed ann and bob). MariaDB cannot group a to-many embedding by other columns
/// (its derived tables cannot see the parent row): a clear 400 there.
async fn embedded_aggregate_cases(b: &Motherboard, d: Dialect) {
    let grouped_inside = if d == Dialect::MySql {
        (400, json!({"code":"PGRST127"}))
    } else {
        (
            200,
            json!([
                {"name":"anna","orders":[{"item_id":1,"count":1},{"item_id":2,"count":1}]},
                {"name":"bobby","orders":[{"item_id":1,"count":1}]},
                {"name":"cid","orders":[]}
            ]),
        )
    };
    let cases: [(&str, u16, Json); 8] = [
        // Supabase's `comments(count)`: an array of one object, also for no rows.
        (
            "GET /customers?select=name,orders!customer_id(count)&id=lte.3&order=id",
            200,
            json!([
                {"name":"anna","orders":[{"count":2}]},
                {"name":"bobby","orders":[{"count":1}]},
                {"name":"cid","orders":[{"count":0}]}
            ]),
        ),
        (
            "GET /customers?select=name,orders!customer_id(total.sum(),n:count())&id=lte.3&order=id",
            200,
            json!([
                {"name":"anna","orders":[{"sum":25.75,"n":2}]},
                {"name":"bobby","orders":[{"sum":15.75,"n":1}]},
                {"name":"cid","orders":[{"sum":null,"n":0}]}
            ]),
        ),
        (
            "GET /customers?select=name,orders!customer_id(item_id,count())&id=lte.3&order=id\
             &orders.order=item_id",
            grouped_inside.0,
            grouped_inside.1,
        ),
        // Nested: the aggregate belongs to the innermost level.
        (
            "GET /customers?select=name,orders!customer_id(id,order_items(qty.sum()))&id=eq.1\
             &orders.order=id",
            200,
            json!([{"name":"anna","orders":[
                {"id":1,"order_items":[{"sum":3}]},
                {"id":2,"order_items":[{"sum":5}]}
            ]}]),
        ),
        // A to-one embedding with an aggregate inside is one object.
        (
            "GET /orders?select=id,customers!customer_id(count())&id=eq.1",
            200,
            json!([{"id":1,"customers":{"count":1}}]),
        ),
        // Root aggregates beside a to-one embedding group by it (and the other columns).
        (
            "GET /orders?select=customer_id,total.sum(),customers!customer_id(name)\
             &order=customer_id",
            200,
            json!([
                {"customer_id":1,"sum":25.75,"customers":{"name":"anna"}},
                {"customer_id":2,"sum":15.75,"customers":{"name":"bobby"}}
            ]),
        ),
        (
            "GET /orders?select=total.sum(),customers!customer_id(name)&customer_id=eq.1",
            200,
            json!([{"sum":25.75,"customers":{"name":"anna"}}]),
        ),
        // An aggregate inside a spread would aggregate the parent's rows: not built.
        (
            "GET /orders?select=customer_id,...customers!customer_id(id.count())",
            400,
            json!({"code":"PGRST127"}),
        ),
    ];
    for (line, status, body) in cases {
        check(b, line, &[], None, status, &[], Some(body)).await;
    }
    // No `order=` can reach these groups: compared in any order.
    check_unordered(
        b,
        "GET /orders?select=n:count(),shipper:customers!shipper_id(name)",
        json!([{"n":1,"shipper":{"name":"bobby"}},{"n":2,"shipper":null}]),
    )
    .await;
    // A to-many embedding is a grouping term too (PostgREST: "few obvious use cases").
    check_unordered(
        b,
        "GET /customers?select=n:count(),orders!customer_id(id)&id=lte.3&orders.order=id",
        json!([
            {"n":1,"orders":[{"id":1},{"id":2}]},
            {"n":1,"orders":[{"id":3}]},
            {"n":1,"orders":[]}
        ]),
    )
    .await;
    check_unordered(
        b,
        "GET /orders?select=total.sum(),...customers!customer_id(name)",
        json!([{"sum":25.75,"name":"anna"},{"sum":15.75,"name":"bobby"}]),
    )
    .await;
}

/// CSV out (`Accept: text/csv`) and in (`Content-Type: text/csv`), and the OpenAPI
/// document at the root.
async fn csv_and_openapi_cases(b: &Motherboard) {
    let csv = [("accept", "text/csv")];
    let (status, headers, body) = send(b, "GET /orders?select=id,total&order=id", &csv, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(body, "id,total\n1,5.5\n2,20.25\n3,15.75\n");
    let (status, _, body) = send(
        b,
        "POST /products",
        &[
            ("content-type", "text/csv"),
            ("prefer", "return=representation"),
        ],
        Some("id,name\n10,\"quill, blue\"\n11,chalk\n"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (_, _, body) = send(
        b,
        "GET /products?select=name&id=gte.10&order=id",
        &csv,
        None,
    )
    .await;
    assert_eq!(body, "name\n\"quill, blue\"\nchalk\n");
    // Errors stay JSON, as in PostgREST.
    check(
        b,
        "GET /nope",
        &csv,
        None,
        404,
        &[],
        Some(json!({"code":"PGRST205"})),
    )
    .await;
    check(
        b,
        "POST /products",
        &[("content-type", "text/csv")],
        Some("id,name\n12\n"),
        400,
        &[],
        Some(json!({"code":"PGRST102"})),
    )
    .await;

    let (status, headers, body) = send(b, "GET /", &[], None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        headers["content-type"],
        "application/openapi+json; charset=utf-8"
    );
    let doc: Json = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/items",
        "/orders",
        "/order_items",
        "/customers",
        "/products",
    ] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} in {doc}");
        assert!(doc["paths"][path]["post"].is_object(), "{path}");
    }
    let items = &doc["components"]["schemas"]["items"];
    assert_eq!(
        items["properties"]["qty"]["type"],
        json!(["integer", "null"])
    );
    assert!(
        items["properties"]["id"]["description"]
            .as_str()
            .unwrap()
            .contains("<pk/>")
    );
    assert!(
        items["required"]
            .as_array()
            .unwrap()
            .contains(&json!("name"))
    );
    let orders = &doc["components"]["schemas"]["orders"];
    assert!(
        orders["properties"]["customer_id"]["description"]
            .as_str()
            .unwrap()
            .contains("<fk table='customers' column='id'/>")
    );
    assert!(doc["components"]["parameters"]["rowFilter.items.name"].is_object());
}

async fn run_dialect_cases(b: &Motherboard, d: Dialect) {
    let rep = ("prefer", "return=representation");
    let unsupported = Some(json!({"code":"PGRST127"}));
    let (regex, fts, contains, patch) = match d {
        Dialect::Postgres => (
            ids(&[2]),
            ids(&[1]),
            ids(&[1]),
            Some(json!([{"id":1,"qty":11}])),
        ),
        // PATCH's representation is read back by key (no `UPDATE ... RETURNING`).
        Dialect::MySql => (
            ids(&[2]),
            unsupported.clone(),
            ids(&[1]),
            Some(json!([{"id":1,"qty":11}])),
        ),
        Dialect::Sqlite => (
            unsupported.clone(),
            unsupported.clone(),
            unsupported.clone(),
            Some(json!([{"id":1,"qty":11}])),
        ),
    };
    let status = |j: &Option<Json>| {
        if j.as_ref().is_some_and(|j| j.get("code").is_some()) {
            400
        } else {
            200
        }
    };
    check(
        b,
        "GET /items?select=id&name=match.^b",
        &[],
        None,
        status(&regex),
        &[],
        regex.clone(),
    )
    .await;
    check(
        b,
        "GET /items?select=id&name=imatch.^B",
        &[],
        None,
        status(&regex),
        &[],
        regex.clone(),
    )
    .await;
    check(
        b,
        "GET /items?select=id&name=fts(english).apple",
        &[],
        None,
        status(&fts),
        &[],
        fts.clone(),
    )
    .await;
    check(
        b,
        r#"GET /items?select=id&data=cs.{"color":"red"}"#,
        &[],
        None,
        status(&contains),
        &[],
        contains.clone(),
    )
    .await;
    check(
        b,
        "PATCH /items?id=eq.1&select=id,qty",
        &[rep],
        Some(r#"{"qty":11}"#),
        status(&patch),
        &[],
        patch.clone(),
    )
    .await;
    // `count=planned` asks PostgreSQL's planner, which never estimates fewer than one row;
    // MariaDB's estimate is InnoDB's table statistics, which move as rows come and go, so
    // only its shape is checked; SQLite (and `exact`) count: none of these rows match.
    if d == Dialect::MySql {
        let (status, headers, body) = send(
            b,
            "GET /order_items?qty=gt.100",
            &[("prefer", "count=planned")],
            None,
        )
        .await;
        let range = headers["content-range"].to_str().unwrap();
        let estimate: u64 = range.strip_prefix("*/").unwrap().parse().unwrap();
        assert_eq!(
            status,
            if estimate > 0 { 206 } else { 200 },
            "{range} {body}"
        );
        assert_eq!(headers["preference-applied"], "count=planned");
        assert_eq!(body, "[]");
    }
    if d == Dialect::Postgres {
        b.storage()
            .unwrap()
            .execute("ANALYZE order_items", &[])
            .await
            .unwrap();
    }
    // An estimate above the rows returned reads as a partial answer (206).
    let planned = if d == Dialect::Postgres {
        ("*/1", 206)
    } else {
        ("*/0", 200)
    };
    let mut counts = vec![("count=exact", ("*/0", 200))];
    if d != Dialect::MySql {
        counts.push(("count=planned", planned));
    }
    for (prefer, (range, status)) in counts {
        check(
            b,
            "GET /order_items?qty=gt.100",
            &[("prefer", prefer)],
            None,
            status,
            &[("content-range", range), ("preference-applied", prefer)],
            Some(json!([])),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgrest_cases_on_sqlite() {
    let board = board_on(&sqlite_url(), config()).await;
    run_cases(&board).await;
    embedding_cases(&board).await;
    write_embedding_cases(&board).await;
    upsert_cases(&board).await;
    rpc_cases(&board, board.storage().unwrap().dialect()).await;
    aggregate_cases(&board).await;
    embedded_aggregate_cases(&board, board.storage().unwrap().dialect()).await;
    csv_and_openapi_cases(&board).await;
    run_dialect_cases(&board, board.storage().unwrap().dialect()).await;
    limited_write_cases(&board, board.storage().unwrap().dialect()).await;
    board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgrest_cases_on_postgres() {
    let Some(db) = postgres_or_skip("postgrest_cases_on_postgres").await else {
        return;
    };
    let board = board_on(&db.url, config()).await;
    run_cases(&board).await;
    embedding_cases(&board).await;
    write_embedding_cases(&board).await;
    upsert_cases(&board).await;
    rpc_cases(&board, board.storage().unwrap().dialect()).await;
    aggregate_cases(&board).await;
    embedded_aggregate_cases(&board, board.storage().unwrap().dialect()).await;
    csv_and_openapi_cases(&board).await;
    run_dialect_cases(&board, board.storage().unwrap().dialect()).await;
    limited_write_cases(&board, board.storage().unwrap().dialect()).await;
    board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgrest_cases_on_mariadb() {
    let Some(db) = mysql_or_skip("postgrest_cases_on_mariadb").await else {
        return;
    };
    let board = board_on(&db.url, config()).await;
    run_cases(&board).await;
    embedding_cases(&board).await;
    write_embedding_cases(&board).await;
    upsert_cases(&board).await;
    rpc_cases(&board, board.storage().unwrap().dialect()).await;
    aggregate_cases(&board).await;
    embedded_aggregate_cases(&board, board.storage().unwrap().dialect()).await;
    csv_and_openapi_cases(&board).await;
    run_dialect_cases(&board, board.storage().unwrap().dialect()).await;
    limited_write_cases(&board, board.storage().unwrap().dialect()).await;
    board.shutdown(StopMode::Fast).await.unwrap();
}

/// PostgREST's limited update and delete: `limit` (and `offset`, not on MariaDB) with an
/// explicit `order` change only the first rows in that order; a `limit` without an `order`
/// is refused rather than ignored (which would change every matching row).
async fn limited_write_cases(b: &Motherboard, d: Dialect) {
    let rep = ("prefer", "return=representation");
    check(
        b,
        "POST /items",
        &[],
        Some(r#"[{"name":"lim-a","qty":1},{"name":"lim-b","qty":1},{"name":"lim-c","qty":1},{"name":"lim-d","qty":1}]"#),
        201,
        &[],
        None,
    )
    .await;
    check(
        b,
        "PATCH /items?name=like.lim-*&limit=1",
        &[],
        Some(r#"{"qty":5}"#),
        400,
        &[],
        Some(json!({"code":"PGRST109"})),
    )
    .await;
    check(
        b,
        "DELETE /items?name=like.lim-*&limit=1",
        &[],
        None,
        400,
        &[],
        Some(json!({"code":"PGRST109"})),
    )
    .await;
    check(
        b,
        "PATCH /items?select=name&name=like.lim-*&order=name.desc&limit=2",
        &[rep],
        Some(r#"{"qty":5}"#),
        200,
        &[],
        Some(json!([{"name":"lim-d"},{"name":"lim-c"}])),
    )
    .await;
    check(
        b,
        "GET /items?select=name,qty&name=like.lim-*&order=name",
        &[],
        None,
        200,
        &[],
        Some(json!([{"name":"lim-a","qty":1},{"name":"lim-b","qty":1},
                    {"name":"lim-c","qty":5},{"name":"lim-d","qty":5}])),
    )
    .await;
    check(
        b,
        "DELETE /items?name=like.lim-*&order=name&limit=1",
        &[],
        None,
        204,
        &[],
        None,
    )
    .await;
    if d == Dialect::MySql {
        check(
            b,
            "DELETE /items?name=like.lim-*&order=name&limit=1&offset=1",
            &[],
            None,
            400,
            &[],
            Some(json!({"code":"PGRST127"})),
        )
        .await;
    } else {
        check(
            b,
            "DELETE /items?name=like.lim-*&order=name&limit=1&offset=1",
            &[],
            None,
            204,
            &[],
            None,
        )
        .await;
    }
    let left = if d == Dialect::MySql {
        json!([{"name":"lim-b"},{"name":"lim-c"},{"name":"lim-d"}])
    } else {
        json!([{"name":"lim-b"},{"name":"lim-d"}])
    };
    check(
        b,
        "GET /items?select=name&name=like.lim-*&order=name",
        &[],
        None,
        200,
        &[],
        Some(left),
    )
    .await;
}

/// The read cache: repeats are served from RAM, writes through MagGate (to the table or to
/// an embedded one) are seen at once, and concurrent misses load once.
async fn read_cache_cases(d: &str, board: &Motherboard, gate: &maggate::GateHandle) {
    let stats = || gate.read_cache_stats().unwrap();
    let line = "GET /orders?select=id,total,items(name)&id=eq.1";
    let first = send(board, line, &[], None).await;
    let again = send(board, line, &[], None).await;
    assert_eq!((first.0, &first.2), (200, &again.2), "{d}");
    assert_eq!((stats().misses, stats().hits), (1, 1), "{d}");
    // A write to the embedded table drops the entry before the writer's next read.
    let (status, _, _) = send(
        board,
        "PATCH /items?id=eq.1",
        &[],
        Some(r#"{"name":"apricot"}"#),
    )
    .await;
    assert_eq!(status, 204, "{d}");
    let (_, _, body) = send(board, line, &[], None).await;
    assert!(body.contains("apricot"), "{d}: {body}");
    assert_eq!(stats().misses, 2, "{d}");
    // Different queries, different entries; a CSV read does not get the JSON entry.
    let (_, headers, _) = send(board, line, &[("accept", "text/csv")], None).await;
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8", "{d}");
    assert_eq!(stats().misses, 3, "{d}");
    // Twenty concurrent reads of a cold key: one load.
    let before = stats();
    let reads = (0..20).map(|_| send(board, "GET /customers?select=name&order=id", &[], None));
    let bodies: Vec<_> = futures::future::join_all(reads).await;
    assert!(
        bodies
            .iter()
            .all(|(s, _, b)| *s == 200 && *b == bodies[0].2),
        "{d}"
    );
    let after = stats();
    assert_eq!(after.misses - before.misses, 1, "{d}: {after:?}");
    assert_eq!(after.hits - before.hits, 19, "{d}: {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_cache_on_sqlite_and_postgres() {
    let config = || GateConfig {
        read_cache: Some(ReadCacheConfig::default()),
        ..config()
    };
    let gate = MagGate::new(config());
    let handle = gate.handle();
    let board = board_with(&sqlite_url(), gate).await;
    read_cache_cases("sqlite", &board, &handle).await;
    board.shutdown(StopMode::Fast).await.unwrap();
    if let Some(db) = postgres_or_skip("read_cache_on_sqlite_and_postgres").await {
        let gate = MagGate::new(config());
        let handle = gate.handle();
        let board = board_with(&db.url, gate).await;
        read_cache_cases("postgres", &board, &handle).await;
        board.shutdown(StopMode::Fast).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_are_refused_unless_enabled() {
    let board = board_on(&sqlite_url(), GateConfig::default()).await;
    for line in [
        "GET /orders?select=count()",
        "GET /customers?select=name,orders!customer_id(count())",
        "GET /customers?select=name,orders!customer_id(total.sum())",
        "GET /orders?select=id,customers!customer_id(name,id.count())",
    ] {
        check(
            &board,
            line,
            &[],
            None,
            400,
            &[],
            Some(json!({"code":"PGRST123"})),
        )
        .await;
    }
    // PostgREST 12 still serves the legacy bare `count` (what Supabase clients send for
    // `comments(count)`) with aggregates off.
    check(
        &board,
        "GET /customers?select=name,orders!customer_id(count)&order=id",
        &[],
        None,
        200,
        &[],
        Some(json!([
            {"name":"ann","orders":[{"count":2}]},
            {"name":"bob","orders":[{"count":1}]},
            {"name":"cid","orders":[{"count":0}]}
        ])),
    )
    .await;
    board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_publish_changes_and_the_summary_counts_endpoints() {
    let board = board_on(&sqlite_url(), config()).await;
    let gate = board.extension("maggate").unwrap();
    assert_eq!(gate.summary().as_deref(), Some("5 tables, 20 endpoints"));
    let mut events = board.bus().subscribe("table.items.changed").unwrap();
    let (status, _, _) = send(
        &board,
        "POST /items",
        &[],
        Some(r#"[{"name":"x"},{"name":"y"}]"#),
    )
    .await;
    assert_eq!(status, 201);
    let event = tokio::time::timeout(Duration::from_secs(2), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.source, "maggate");
    assert_eq!(event.payload["operation"], "insert");
    assert_eq!(event.payload["count"], 2);
    // A refused write publishes nothing.
    let (status, _, _) = send(&board, "DELETE /items", &[], None).await;
    assert_eq!(status, 400);
    assert!(events.try_recv().is_none());
    board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_changes_are_picked_up_by_reload_and_by_polling() {
    let gate = MagGate::new(config());
    let handle = gate.handle();
    let storage = SqlStorage::connect(&sqlite_url(), StorageOptions::default()).unwrap();
    for stmt in ddl(Dialect::Sqlite) {
        storage.execute(stmt, &[]).await.unwrap();
    }
    let board = Motherboard::builder()
        .with(HyperCpu::new("127.0.0.1:0".parse().unwrap()))
        .with(storage)
        .extension(gate)
        .build()
        .unwrap();
    board.boot().await.unwrap();
    let db = board.storage().unwrap();
    db.execute("CREATE TABLE extra (id INTEGER PRIMARY KEY)", &[])
        .await
        .unwrap();
    assert_eq!(send(&board, "GET /extra", &[], None).await.0, 404);
    assert!(handle.reload().await.unwrap(), "the fingerprint changed");
    assert_eq!(send(&board, "GET /extra", &[], None).await.0, 200);
    assert_eq!(handle.summary().as_deref(), Some("6 tables, 24 endpoints"));
    board.shutdown(StopMode::Fast).await.unwrap();

    let polling = GateConfig {
        schema_poll: Some(Duration::from_millis(100)),
        ..config()
    };
    let board = board_on(&sqlite_url(), polling).await;
    let db = board.storage().unwrap();
    db.execute("CREATE TABLE later (id INTEGER PRIMARY KEY)", &[])
        .await
        .unwrap();
    let mut served = false;
    for _ in 0..50 {
        if send(&board, "GET /later", &[], None).await.0 == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "the poller reloaded the schema");
    board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_over_a_real_socket() {
    let board = board_on(&sqlite_url(), config()).await;
    let base = board.last_report().unwrap().listening.unwrap();
    let response = reqwest::Client::new()
        .get(format!("{base}/rest/v1/items?select=id,name&id=eq.1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let body: Json = response.json().await.unwrap();
    assert_eq!(body, json!([{"id":1,"name":"apple"}]));
    board.shutdown(StopMode::Fast).await.unwrap();
}

/// A random, well-typed filter tree over `items`, rendered in PostgREST syntax.
fn tree(depth: u32) -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        (
            prop::sample::select(vec!["id", "qty"]),
            prop::sample::select(vec!["eq", "neq", "gt", "gte", "lt", "lte", "isdistinct"]),
            -5i64..120
        )
            .prop_map(|(c, op, v)| format!("{c}.{op}.{v}")),
        (
            prop::sample::select(vec!["price"]),
            prop::sample::select(vec!["gt", "lte"]),
            0.0f64..10.0
        )
            .prop_map(|(c, op, v)| format!("{c}.{op}.{v:.2}")),
        ("[a-z*%_]{0,4}", prop::sample::select(vec!["like", "ilike"]))
            .prop_map(|(v, op)| format!("name.{op}.\"{v}\"")),
        (
            prop::sample::select(vec!["id", "qty", "price", "name", "active", "data"]),
            prop::sample::select(vec!["null", "not_null"])
        )
            .prop_map(|(c, v)| format!("{c}.is.{v}")),
        prop::sample::select(vec!["true", "false", "unknown"])
            .prop_map(|v| format!("active.is.{v}")),
        prop::collection::vec(0i64..10, 0..4).prop_map(|v| {
            let items: Vec<String> = v.iter().map(ToString::to_string).collect();
            format!("id.in.({})", items.join(","))
        }),
        (
            prop::sample::select(vec!["any", "all"]),
            prop::collection::vec(0i64..10, 0..3)
        )
            .prop_map(|(q, v)| {
                let items: Vec<String> = v.iter().map(ToString::to_string).collect();
                format!("id.gt({q}).{{{}}}", items.join(","))
            }),
        "[a-z]{0,3}".prop_map(|v| format!("data->>color.eq.{v}")),
    ];
    let leaf = (any::<bool>(), leaf)
        .prop_map(|(not, f)| {
            if not {
                let (col, rest) = f.split_once('.').unwrap();
                format!("{col}.not.{rest}")
            } else {
                f
            }
        })
        .boxed();
    if depth == 0 {
        return leaf;
    }
    prop_oneof![
        2 => leaf,
        1 => (any::<bool>(), prop::sample::select(vec!["and", "or"]), prop::collection::vec(tree(depth - 1), 1..4))
            .prop_map(|(not, op, kids)| format!("{}{op}({})", if not { "not." } else { "" }, kids.join(","))),
    ]
    .boxed()
}

#[test]
fn random_filter_trees_run_on_sqlite() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let board = runtime.block_on(board_on(&sqlite_url(), config()));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let strategy = (tree(3), any::<bool>());
    runner
        .run(&strategy, |(t, order)| {
            let logic = format!("and=({t})");
            let enc: String = logic
                .chars()
                .map(|c| match c {
                    '%' => "%25".to_owned(),
                    '&' => "%26".to_owned(),
                    '+' => "%2B".to_owned(),
                    '#' => "%23".to_owned(),
                    ' ' => "%20".to_owned(),
                    c => c.to_string(),
                })
                .collect();
            let line = format!(
                "GET /items?select=id,name&{enc}{}",
                if order {
                    "&order=qty.desc.nullsfirst,id"
                } else {
                    ""
                }
            );
            let (status, _, body) = runtime.block_on(send(&board, &line, &[], None));
            prop_assert_eq!(status, 200, "{} -> {}", logic, body);
            let parsed: Json = serde_json::from_str(&body).unwrap();
            prop_assert!(parsed.is_array());
            Ok(())
        })
        .unwrap();
    runtime.block_on(board.shutdown(StopMode::Fast)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_pgrst_reloads_the_schema_on_postgres() {
    let Some(db) = postgres_or_skip("notify_pgrst_reloads_the_schema_on_postgres").await else {
        return;
    };
    // Without the DDL event trigger, so that only the explicit NOTIFY below reloads.
    let board = board_on(
        &db.url,
        GateConfig {
            watch_ddl: false,
            ..config()
        },
    )
    .await;
    let storage = board.storage().unwrap();
    storage
        .execute("CREATE TABLE notified (id integer PRIMARY KEY)", &[])
        .await
        .unwrap();
    assert_eq!(send(&board, "GET /notified", &[], None).await.0, 404);
    storage
        .execute("NOTIFY pgrst, 'reload schema'", &[])
        .await
        .unwrap();
    let mut served = false;
    for _ in 0..40 {
        if send(&board, "GET /notified", &[], None).await.0 == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "NOTIFY pgrst reloaded the schema");
    board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_alone_reloads_the_schema_on_postgres() {
    let Some(db) = postgres_or_skip("ddl_alone_reloads_the_schema_on_postgres").await else {
        return;
    };
    // No polling: only the event trigger MagGate installed can announce the new table.
    let board = board_on(&db.url, config()).await;
    let storage = board.storage().unwrap();
    storage
        .execute("CREATE TABLE by_ddl (id integer PRIMARY KEY)", &[])
        .await
        .unwrap();
    let mut served = false;
    for _ in 0..60 {
        if send(&board, "GET /by_ddl", &[], None).await.0 == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "a CREATE TABLE alone reloaded the schema");
    board.shutdown(StopMode::Fast).await.unwrap();
}

/// Reads `table?qs` through MagGate's SQL builder on `cat` and runs it: the JSON body, or
/// the error code when the request is refused.
async fn read_through(
    storage: &SqlStorage,
    cat: &maggate::sql::Catalog,
    table: &str,
    qs: &str,
) -> Json {
    use maggate::request::{QueryParams, Request, RequestHeaders};
    let params = QueryParams::decode(qs);
    let req = Request::parse(&params, &RequestHeaders::default()).unwrap();
    let plan = cat.table(table).and_then(|t| {
        maggate::sql::read(
            cat,
            t,
            &req.query,
            req.range,
            maggate::sql::ReadOptions::default(),
        )
    });
    let plan = match plan {
        Ok(plan) => plan,
        Err(e) => return json!({"code": e.code}),
    };
    let rows = storage
        .query(&plan.statement.sql, &plan.statement.binds)
        .await
        .unwrap();
    serde_json::from_str(&rows[0].get_text(maggate::sql::BODY).unwrap()).unwrap()
}

/// Relationships through views on PostgreSQL, as PostgREST infers them: the catalog query
/// finds the view columns that read table columns unchanged (not expressions), and the
/// catalog given them embeds through a view as through its table (many-to-one, one-to-many,
/// view to view, many-to-many). Run below the gate, which does not read view columns yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relationships_through_views_on_postgres() {
    use maggate::sql::views::{VIEW_COLUMNS_PG, ViewColumn};
    let Some(db) = postgres_or_skip("relationships_through_views_on_postgres").await else {
        return;
    };
    let storage = SqlStorage::connect(&db.url, StorageOptions::default()).unwrap();
    let views = [
        "CREATE VIEW orders_view AS SELECT id, customer_id AS buyer, total * 2 AS doubled \
         FROM orders",
        "CREATE VIEW people AS SELECT id AS pid, name FROM customers",
    ];
    let setup = ddl(Dialect::Postgres)
        .into_iter()
        .chain([SEED])
        .chain(SEED_EMBED);
    for stmt in setup.chain(views) {
        storage.execute(stmt, &[]).await.unwrap();
    }
    let rows = storage.query(VIEW_COLUMNS_PG, &[]).await.unwrap();
    let cols: Vec<ViewColumn> = rows
        .iter()
        .map(|r| {
            ViewColumn::from_columns(
                [
                    "view_schema",
                    "view_name",
                    "view_column",
                    "source_schema",
                    "source_table",
                    "source_column",
                ]
                .map(|c| r.get_text(c).unwrap()),
            )
        })
        .collect();
    let found: Vec<String> = cols
        .iter()
        .map(|c| format!("{}.{}={}.{}", c.view, c.column, c.source, c.source_column))
        .collect();
    assert_eq!(
        found,
        [
            "orders_view.buyer=orders.customer_id",
            "orders_view.id=orders.id",
            "people.name=customers.name",
            "people.pid=customers.id",
        ]
    );
    let schema = storage.introspect(&["public".to_owned()]).await.unwrap();
    let plain = maggate::sql::Catalog::new(schema, Dialect::Postgres, &["public".to_owned()]);
    let cat = plain.clone().with_view_columns(&cols);
    let cases = [
        (
            "orders_view",
            "select=id,buyer,customers(name)&order=id",
            json!([
                {"id":1,"buyer":1,"customers":{"name":"ann"}},
                {"id":2,"buyer":1,"customers":{"name":"ann"}},
                {"id":3,"buyer":2,"customers":{"name":"bob"}}
            ]),
        ),
        (
            "customers",
            "select=name,orders_view(id)&order=id&orders_view.order=id",
            json!([
                {"name":"ann","orders_view":[{"id":1},{"id":2}]},
                {"name":"bob","orders_view":[{"id":3}]},
                {"name":"cid","orders_view":[]}
            ]),
        ),
        (
            "orders_view",
            "select=id,people(name)&id=eq.3",
            json!([{"id":3,"people":{"name":"bob"}}]),
        ),
        (
            "orders_view",
            "select=id,products(name)&id=eq.1&products.order=id",
            json!([{"id":1,"products":[{"name":"pen"},{"name":"ink"}]}]),
        ),
    ];
    for (table, qs, want) in cases {
        let got = read_through(&storage, &cat, table, qs).await;
        assert_eq!(got, want, "{table}?{qs}");
    }
    // Without the view columns a view has no relationships.
    let got = read_through(&storage, &plain, "orders_view", "select=id,customers(name)").await;
    assert_eq!(got, json!({"code":"PGRST200"}));

    // The gate reads the view columns when it loads the schema: the same over HTTP.
    let board = Motherboard::builder()
        .with(HyperCpu::new("127.0.0.1:0".parse().unwrap()))
        .with(storage.clone())
        .extension(MagGate::new(GateConfig {
            schema_poll: None,
            ..GateConfig::default()
        }))
        .build()
        .unwrap();
    board.boot().await.unwrap();
    let (status, _, body) = send(
        &board,
        "GET /orders_view?select=id,buyer,customers(name)&order=id",
        &[],
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Json>(&body).unwrap(),
        json!([
            {"id":1,"buyer":1,"customers":{"name":"ann"}},
            {"id":2,"buyer":1,"customers":{"name":"ann"}},
            {"id":3,"buyer":2,"customers":{"name":"bob"}}
        ])
    );
    board.shutdown(StopMode::Fast).await.unwrap();
}
