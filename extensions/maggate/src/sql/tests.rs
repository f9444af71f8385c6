//! SQL building cases: URL in, SQL and binds out, per dialect.

use magmobo_core::roles::schema::{Column, ColumnKind, Schema, Table, TableKind};
use magmobo_core::roles::storage::{Dialect, Value};

use super::*;
use crate::request::{QueryParams, Request, RequestHeaders};

fn col(name: &str, data_type: &str, kind: ColumnKind) -> Column {
    Column {
        name: name.into(),
        data_type: data_type.into(),
        kind,
        nullable: true,
        default: None,
        generated: false,
        enum_values: Vec::new(),
        comment: None,
    }
}

fn catalog(d: Dialect) -> Catalog {
    let schema_name = match d {
        Dialect::Postgres => "public",
        Dialect::MySql => "app",
        Dialect::Sqlite => "main",
    };
    let items = Table {
        schema: schema_name.into(),
        name: "items".into(),
        kind: TableKind::Table,
        columns: vec![
            col("id", "integer", ColumnKind::Integer),
            col("name", "text", ColumnKind::Text),
            col("price", "numeric", ColumnKind::Number),
            col("active", "boolean", ColumnKind::Boolean),
            col("data", "jsonb", ColumnKind::Json),
        ],
        primary_key: vec!["id".into()],
        unique: Vec::new(),
        foreign_keys: Vec::new(),
        insertable: true,
        comment: None,
    };
    Catalog::new(
        Schema {
            tables: vec![items],
            functions: Vec::new(),
            fingerprint: "x".into(),
        },
        d,
        &["public".to_owned()],
    )
}

fn read_sql(d: Dialect, qs: &str) -> ApiResult<Statement> {
    let cat = catalog(d);
    let params = QueryParams::decode(qs);
    let req = Request::parse(&params, &RequestHeaders::default())?;
    let table = cat.table("items")?;
    let opts = ReadOptions {
        max_rows: None,
        count: false,
    };
    read(&cat, table, &req.query, req.range, opts).map(|p| p.statement)
}

#[track_caller]
fn check(d: Dialect, qs: &str, sql: &str, binds: &[Value]) {
    let st = read_sql(d, qs).unwrap_or_else(|e| panic!("{qs}: {e:?}"));
    assert_eq!(st.sql, sql, "{qs}");
    assert_eq!(st.binds, binds, "{qs}");
}

#[track_caller]
fn check_err(d: Dialect, qs: &str, status: u16, code: &str) -> ApiError {
    let e = read_sql(d, qs).expect_err(qs);
    assert_eq!((e.status, e.code.as_str()), (status, code), "{qs}: {e:?}");
    e
}

#[test]
fn postgres_reads_aggregate_json_with_typed_binds() {
    check(
        Dialect::Postgres,
        "select=id,n:name&id=gt.5&order=name.desc.nullslast&limit=2&offset=1",
        "SELECT count(*) AS \"page_total\", coalesce(json_agg(_mg), '[]')::text AS \"body\" \
         FROM (SELECT \"id\" AS \"id\", \"name\" AS \"n\" FROM \"public\".\"items\" \
         WHERE \"id\" > CAST($1 AS integer) ORDER BY \"name\" DESC NULLS LAST LIMIT 2 OFFSET 1) _mg",
        &[Value::Int(5)],
    );
}

#[test]
fn sqlite_reads_build_objects_with_bound_keys() {
    check(
        Dialect::Sqlite,
        "select=id,active&or=(id.eq.1,name.like.a*)",
        "SELECT count(*) AS \"page_total\", coalesce(json_group_array(json(_mg.j)), '[]') AS \"body\" \
         FROM (SELECT json_object(?, \"id\", ?, json(CASE WHEN \"active\" IS NULL THEN 'null' \
         WHEN \"active\" THEN 'true' ELSE 'false' END)) AS \"j\" FROM \"main\".\"items\" \
         WHERE (\"id\" = ? OR \"name\" GLOB ?)) _mg",
        &[
            Value::Text("id".into()),
            Value::Text("active".into()),
            Value::Int(1),
            Value::Text("a*".into()),
        ],
    );
}

#[test]
fn mysql_reads_one_object_per_row() {
    check(
        Dialect::MySql,
        "select=id&name=ilike.*x*&order=id.nullsfirst",
        "SELECT JSON_OBJECT(?, `id`) AS `j` FROM `app`.`items` WHERE LOWER(`name`) LIKE LOWER(?) \
         ORDER BY (`id` IS NULL) DESC, `id` ASC",
        &[Value::Text("id".into()), Value::Text("%x%".into())],
    );
}

#[test]
fn json_paths_bind_their_keys() {
    check(
        Dialect::Postgres,
        "select=id&data->a->>b=eq.x",
        "SELECT count(*) AS \"page_total\", coalesce(json_agg(_mg), '[]')::text AS \"body\" \
         FROM (SELECT \"id\" AS \"id\" FROM \"public\".\"items\" WHERE \"data\"->$1->>$2 = CAST($3 AS text)) _mg",
        &[
            Value::Text("a".into()),
            Value::Text("b".into()),
            Value::Text("x".into()),
        ],
    );
    let st = read_sql(Dialect::Sqlite, "select=id&data->a->0=eq.1").unwrap();
    assert!(st.sql.contains("(\"data\" -> ?) = ?"), "{}", st.sql);
    assert_eq!(st.binds[1], Value::Text("$.\"a\"[0]".into()));
}

#[test]
fn quantifiers_and_in_lists_expand() {
    let st = read_sql(
        Dialect::Sqlite,
        "id=eq(any).{1,2}&name=in.(a,\"b,c\")&price=not.is.null",
    )
    .unwrap();
    assert!(
        st.sql.contains(
            "WHERE (\"id\" = ? OR \"id\" = ?) AND \"name\" IN (?, ?) AND NOT (\"price\" IS NULL)"
        ),
        "{}",
        st.sql
    );
}

#[test]
fn request_errors_have_postgrest_shapes() {
    let e = check_err(Dialect::Postgres, "select=nmae", 400, "42703");
    assert_eq!(
        e.hint.as_deref(),
        Some("Perhaps you meant to reference the column \"items.name\".")
    );
    check_err(Dialect::Postgres, "id=eq.abc", 400, "22P02");
    check_err(Dialect::Sqlite, "name=match.^a", 400, "PGRST127");
    check_err(Dialect::Sqlite, "data=cs.{}", 400, "PGRST127");
    check_err(Dialect::Postgres, "select=id::evil", 400, "42704");
    check_err(Dialect::Postgres, "select=count()", 400, "PGRST123");
    check_err(Dialect::Postgres, "select=id,orders(*)", 400, "PGRST127");
    check_err(Dialect::Postgres, "orders.id=eq.1", 400, "PGRST108");
    check_err(Dialect::Postgres, "name->a=eq.1", 400, "42883");
    let cat = catalog(Dialect::Postgres);
    let e = cat.table("itmes").expect_err("typo");
    assert_eq!((e.status, e.code.as_str()), (404, "PGRST205"));
    assert_eq!(
        e.hint.as_deref(),
        Some("Perhaps you meant the table 'public.items'")
    );
}

#[test]
fn writes_bind_payload_values_per_column() {
    let cat = catalog(Dialect::Postgres);
    let table = cat.table("items").unwrap();
    let params = QueryParams::decode("select=id");
    let req = Request::parse(&params, &RequestHeaders::default()).unwrap();
    let rows = vec![
        serde_json::json!({"id": 1, "name": "a"})
            .as_object()
            .cloned()
            .unwrap(),
        serde_json::json!({"id": "2", "name": null})
            .as_object()
            .cloned()
            .unwrap(),
    ];
    let opts = InsertOptions {
        rows: &rows,
        missing: None,
    };
    let plan = insert(&cat, table, &req.query, opts, Returning::Selected).unwrap();
    assert_eq!(
        plan.statement.sql,
        "WITH _mg_w AS (INSERT INTO \"public\".\"items\" (\"id\", \"name\") VALUES \
         (CAST($1 AS integer), CAST($2 AS text)), (CAST($3 AS integer), CAST($4 AS text)) RETURNING *) \
         SELECT count(*) AS \"page_total\", coalesce(json_agg(_mg), '[]')::text AS \"body\" \
         FROM (SELECT \"id\" AS \"id\" FROM _mg_w) _mg"
    );
    assert_eq!(plan.statement.binds[2], Value::Int(2));
    let bad = vec![serde_json::json!({"nope": 1}).as_object().cloned().unwrap()];
    let opts = InsertOptions {
        rows: &bad,
        missing: None,
    };
    let e = insert(&cat, table, &req.query, opts, Returning::Nothing).unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (400, "PGRST204"));

    let cat = catalog(Dialect::Sqlite);
    let table = cat.table("items").unwrap();
    let params = QueryParams::decode("id=eq.1");
    let req = Request::parse(&params, &RequestHeaders::default()).unwrap();
    let payload = serde_json::json!({"active": true})
        .as_object()
        .cloned()
        .unwrap();
    let plan = update(&cat, table, &req.query, &payload, Returning::Nothing)
        .unwrap()
        .unwrap();
    assert_eq!(
        plan.statement.sql,
        "UPDATE \"main\".\"items\" SET \"active\" = ? WHERE \"id\" = ?"
    );
    let plan = delete(&cat, table, &req.query, Returning::PrimaryKey).unwrap();
    assert_eq!(
        plan.statement.sql,
        "DELETE FROM \"main\".\"items\" WHERE \"id\" = ? RETURNING json_object(?, \"id\") AS \"j\""
    );
}
