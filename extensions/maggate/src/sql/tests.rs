//! SQL building cases: URL in, SQL and binds out, per dialect.

use magmobo_core::roles::schema::{
    Column, ColumnKind, ForeignKey, Function, FunctionParam, Schema, Table, TableKind,
};
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

fn function(name: &str, params: &[(&str, &str)], returns: &str, set: bool) -> Function {
    Function {
        schema: "public".into(),
        name: name.into(),
        params: params
            .iter()
            .map(|(n, t)| FunctionParam {
                name: (*n).into(),
                data_type: (*t).into(),
                has_default: false,
            })
            .collect(),
        returns: returns.into(),
        returns_set: set,
        read_only: true,
        returns_columns: Vec::new(),
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
    let fk = |name: &str, cols: &[&str], table: &str| ForeignKey {
        name: name.into(),
        columns: cols.iter().map(|c| (*c).into()).collect(),
        foreign_schema: schema_name.into(),
        foreign_table: table.into(),
        foreign_columns: vec!["id".into()],
    };
    let table = |name: &str, cols: Vec<Column>, pk: &[&str], fks: Vec<ForeignKey>| Table {
        schema: schema_name.into(),
        name: name.into(),
        kind: TableKind::Table,
        columns: cols,
        primary_key: pk.iter().map(|c| (*c).into()).collect(),
        unique: Vec::new(),
        foreign_keys: fks,
        insertable: true,
        comment: None,
    };
    let int = |n: &str| col(n, "integer", ColumnKind::Integer);
    let customers = table(
        "customers",
        vec![int("id"), col("name", "text", ColumnKind::Text)],
        &["id"],
        Vec::new(),
    );
    let orders = table(
        "orders",
        vec![
            int("id"),
            int("customer_id"),
            col("total", "numeric", ColumnKind::Number),
        ],
        &["id"],
        vec![fk("orders_customer_id_fkey", &["customer_id"], "customers")],
    );
    let products = table(
        "products",
        vec![int("id"), col("name", "text", ColumnKind::Text)],
        &["id"],
        Vec::new(),
    );
    let order_items = table(
        "order_items",
        vec![int("order_id"), int("product_id")],
        &["order_id", "product_id"],
        vec![
            fk("order_items_order_id_fkey", &["order_id"], "orders"),
            fk("order_items_product_id_fkey", &["product_id"], "products"),
        ],
    );
    let messages = table(
        "messages",
        vec![int("id"), int("sender_id"), int("receiver_id")],
        &["id"],
        vec![
            fk("messages_sender_id_fkey", &["sender_id"], "customers"),
            fk("messages_receiver_id_fkey", &["receiver_id"], "customers"),
        ],
    );
    Catalog::new(
        Schema {
            tables: vec![items, customers, orders, products, order_items, messages],
            functions: vec![
                function(
                    "add_them",
                    &[("a", "integer"), ("b", "integer")],
                    "integer",
                    false,
                ),
                function("cheap_items", &[("max_price", "numeric")], "items", true),
            ],
            fingerprint: "x".into(),
        },
        d,
        &["public".to_owned()],
    )
}

fn read_sql(d: Dialect, qs: &str) -> ApiResult<Statement> {
    read_on(d, "items", qs)
}

fn read_on(d: Dialect, table: &str, qs: &str) -> ApiResult<Statement> {
    let cat = catalog(d);
    let params = QueryParams::decode(qs);
    let req = Request::parse(&params, &RequestHeaders::default())?;
    let table = cat.table(table)?;
    let opts = ReadOptions {
        max_rows: None,
        count: false,
        aggregates: true,
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
fn aggregates_group_by_the_other_selected_columns() {
    // PostgreSQL groups by output position (a JSON path written twice would bind twice).
    let st = read_sql(Dialect::Postgres, "select=name,total:id.sum(),count()").unwrap();
    assert!(
        st.sql.contains(
            "SELECT \"name\" AS \"name\", sum(\"id\") AS \"total\", count(*) AS \"count\" FROM \"public\".\"items\""
        ) && st.sql.contains(" GROUP BY 1"),
        "{}",
        st.sql
    );
    // The others repeat the expression; a lone aggregate has no GROUP BY.
    let st = read_sql(Dialect::Sqlite, "select=name,id.max()").unwrap();
    assert!(st.sql.contains("GROUP BY \"name\""), "{}", st.sql);
    let st = read_sql(Dialect::MySql, "select=id.avg()::text").unwrap();
    assert!(!st.sql.contains("GROUP BY"), "{}", st.sql);
    assert!(st.sql.contains("CAST(avg("), "{}", st.sql);
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
    check_err(Dialect::Postgres, "select=id.sum(),item_id", 400, "42703");
    check_err(Dialect::Postgres, "select=id,orders(*)", 400, "PGRST200");
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
        resolution: None,
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
        resolution: None,
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

#[track_caller]
fn check_on(d: Dialect, table: &str, qs: &str, sql: &str, binds: &[Value]) {
    let st = read_on(d, table, qs).unwrap_or_else(|e| panic!("{qs}: {e:?}"));
    assert_eq!(st.sql, sql, "{qs}");
    assert_eq!(st.binds, binds, "{qs}");
}

#[test]
fn postgres_embeds_are_correlated_json_subqueries() {
    check_on(
        Dialect::Postgres,
        "orders",
        "select=id,customer:customers(name)",
        "SELECT count(*) AS \"page_total\", coalesce(json_agg(_mg), '[]')::text AS \"body\" \
         FROM (SELECT \"id\" AS \"id\", (SELECT row_to_json(\"_mg1r\") FROM (SELECT \"name\" AS \"name\" \
         FROM \"public\".\"customers\" AS \"_mg1\" WHERE \"_mg1\".\"id\" = \"orders\".\"customer_id\") \"_mg1r\") \
         AS \"customer\" FROM \"public\".\"orders\") _mg",
        &[],
    );
    check_on(
        Dialect::Postgres,
        "customers",
        "select=name,orders!inner(id)&orders.total=gt.10&orders.order=total.desc&orders.limit=2",
        "SELECT count(*) AS \"page_total\", coalesce(json_agg(_mg), '[]')::text AS \"body\" \
         FROM (SELECT \"name\" AS \"name\", (SELECT coalesce(json_agg(\"_mg1r\"), '[]') FROM (SELECT \"id\" AS \"id\" \
         FROM \"public\".\"orders\" AS \"_mg1\" WHERE \"_mg1\".\"customer_id\" = \"customers\".\"id\" \
         AND \"total\" > CAST($1 AS numeric) ORDER BY \"total\" DESC LIMIT 2) \"_mg1r\") AS \"orders\" \
         FROM \"public\".\"customers\" WHERE EXISTS (SELECT 1 FROM \"public\".\"orders\" AS \"_mg1\" \
         WHERE \"_mg1\".\"customer_id\" = \"customers\".\"id\" AND \"total\" > CAST($2 AS numeric))) _mg",
        &[Value::Text("10".into()), Value::Text("10".into())],
    );
}

#[test]
fn many_to_many_goes_through_the_junction_table() {
    let st = read_on(Dialect::Sqlite, "orders", "select=id,products(name)").unwrap();
    assert!(
        st.sql.contains(
            "json((SELECT coalesce(json_group_array(json(\"_mg1r\".\"j\")), '[]') FROM (SELECT \
             json_object(?, \"name\") AS \"j\" FROM \"main\".\"products\" AS \"_mg1\" WHERE EXISTS \
             (SELECT 1 FROM \"main\".\"order_items\" AS \"_mg1j\" WHERE \"_mg1j\".\"product_id\" = \
             \"_mg1\".\"id\" AND \"_mg1j\".\"order_id\" = \"orders\".\"id\")) \"_mg1r\"))"
        ),
        "{}",
        st.sql
    );
}

#[test]
fn mysql_embeds_aggregate_in_order_and_mark_json() {
    check_on(
        Dialect::MySql,
        "customers",
        "select=id,orders(id)&orders.order=id.desc&orders.limit=1",
        "SELECT JSON_OBJECT(?, `id`, ?, JSON_EXTRACT((SELECT COALESCE(JSON_ARRAYAGG(JSON_OBJECT(?, `id`) \
         ORDER BY `id` DESC LIMIT 1), JSON_ARRAY()) FROM `app`.`orders` AS `_mg1` \
         WHERE `_mg1`.`customer_id` = `customers`.`id`), '$')) AS `j` FROM `app`.`customers`",
        &[
            Value::Text("id".into()),
            Value::Text("orders".into()),
            Value::Text("id".into()),
        ],
    );
    check_on(
        Dialect::MySql,
        "orders",
        "select=id,...customers(name)",
        "SELECT JSON_OBJECT(?, `id`, ?, (SELECT `name` FROM `app`.`customers` AS `_mg1` \
         WHERE `_mg1`.`id` = `orders`.`customer_id`)) AS `j` FROM `app`.`orders`",
        &[Value::Text("id".into()), Value::Text("name".into())],
    );
}

#[test]
fn relationships_are_found_disambiguated_or_refused() {
    let e = read_on(Dialect::Postgres, "customers", "select=*,messages(*)").unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (300, "PGRST201"));
    assert_eq!(
        e.details_json.map(|j| *j),
        Some(serde_json::json!([
            {"cardinality":"one-to-many","embedding":"customers with messages",
             "relationship":"messages_receiver_id_fkey using customers(id) and messages(receiver_id)"},
            {"cardinality":"one-to-many","embedding":"customers with messages",
             "relationship":"messages_sender_id_fkey using customers(id) and messages(sender_id)"}
        ]))
    );
    assert_eq!(
        e.hint.as_deref(),
        Some(
            "Try changing 'messages' to one of the following: 'messages!messages_receiver_id_fkey', \
             'messages!messages_sender_id_fkey'. Find the desired relationship in the 'details' key."
        )
    );
    for hinted in [
        "select=id,messages!sender_id(id)",
        "select=id,messages!messages_sender_id_fkey(id)",
    ] {
        let st = read_on(Dialect::Postgres, "customers", hinted).unwrap();
        assert!(
            st.sql
                .contains("\"_mg1\".\"sender_id\" = \"customers\".\"id\""),
            "{}",
            st.sql
        );
    }
    let st = read_on(
        Dialect::Postgres,
        "messages",
        "select=id,sender:sender_id(name)",
    )
    .unwrap();
    assert!(st.sql.contains("row_to_json"), "{}", st.sql);
    let e = read_on(Dialect::Postgres, "customers", "select=*,items(*)").unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (400, "PGRST200"));
    let e = read_on(Dialect::Postgres, "customers", "select=*,...orders(*)").unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (400, "PGRST119"));
    let e = read_on(
        Dialect::Postgres,
        "customers",
        "select=*,orders(*)&products.id=eq.1",
    )
    .unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (400, "PGRST108"));
    let e = read_on(Dialect::Postgres, "customers", "select=*,orders(nope)").unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (400, "42703"));
}

#[test]
fn upserts_resolve_conflicts_per_dialect() {
    let rows = vec![
        serde_json::json!({"id": 1, "name": "a"})
            .as_object()
            .cloned()
            .unwrap(),
    ];
    let sql = |d: Dialect, qs: &str, r: crate::request::PreferResolution| {
        let cat = catalog(d);
        let table = cat.table("items").unwrap();
        let params = QueryParams::decode(qs);
        let req = Request::parse(&params, &RequestHeaders::default()).unwrap();
        let opts = InsertOptions {
            rows: &rows,
            missing: None,
            resolution: Some(r),
        };
        let plan = insert(&cat, table, &req.query, opts, Returning::Nothing).unwrap();
        let count = conflict_count(&cat, table, &req.query, &rows)
            .unwrap()
            .unwrap();
        (plan.statement.sql, count.sql)
    };
    use crate::request::PreferResolution::{IgnoreDuplicates, MergeDuplicates};
    assert_eq!(
        sql(Dialect::Postgres, "", MergeDuplicates),
        (
            "INSERT INTO \"public\".\"items\" (\"id\", \"name\") VALUES (CAST($1 AS integer), \
             CAST($2 AS text)) ON CONFLICT (\"id\") DO UPDATE SET \"id\" = excluded.\"id\", \
             \"name\" = excluded.\"name\""
                .to_owned(),
            "SELECT count(*) AS \"total\" FROM \"public\".\"items\" WHERE (\"id\" = CAST($1 AS integer))"
                .to_owned()
        )
    );
    assert_eq!(
        sql(Dialect::Sqlite, "on_conflict=name", IgnoreDuplicates).0,
        "INSERT INTO \"main\".\"items\" (\"id\", \"name\") VALUES (?, ?) ON CONFLICT (\"name\") DO NOTHING"
    );
    assert_eq!(
        sql(Dialect::MySql, "", MergeDuplicates).0,
        "INSERT INTO `app`.`items` (`id`, `name`) VALUES (?, ?) ON DUPLICATE KEY UPDATE \
         `id` = VALUES(`id`), `name` = VALUES(`name`)"
    );
    assert_eq!(
        sql(Dialect::MySql, "", IgnoreDuplicates).0,
        "INSERT INTO `app`.`items` (`id`, `name`) VALUES (?, ?) ON DUPLICATE KEY UPDATE `id` = `id`"
    );
}

#[test]
fn rpc_calls_bind_arguments_with_parameter_casts() {
    use super::rpc::{Arg, call, find};
    let cat = catalog(Dialect::Postgres);
    let opts = ReadOptions {
        max_rows: None,
        count: false,
        aggregates: true,
    };
    let e = find(&cat, "nope", &[]).unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (404, "PGRST202"));
    assert_eq!(find(&cat, "add_them", &["a"]).unwrap_err().code, "PGRST202");
    let f = find(&cat, "add_them", &["a", "b"]).unwrap();
    let params = QueryParams::decode("");
    let req = Request::parse(&params, &RequestHeaders::default()).unwrap();
    let args = vec![
        ("a".to_owned(), Arg::Text("1".into())),
        ("b".to_owned(), Arg::Json(serde_json::json!(2))),
    ];
    let c = call(&cat, f, &args, &req.query, req.range, opts).unwrap();
    assert!(c.scalar);
    assert_eq!(
        c.plan.statement.sql,
        "SELECT 1 AS \"page_total\", coalesce(to_json(\"public\".\"add_them\"(\"a\" := CAST($1 AS integer), \
         \"b\" := CAST($2 AS integer)))::text, 'null') AS \"body\""
    );
    assert_eq!(c.plan.statement.binds, vec![Value::Int(1), Value::Int(2)]);

    let f = find(&cat, "cheap_items", &["max_price"]).unwrap();
    let params = QueryParams::decode("select=id&id=gt.2&order=id&limit=1");
    let req = Request::parse(&params, &RequestHeaders::default()).unwrap();
    let args = vec![("max_price".to_owned(), Arg::Text("2.5".into()))];
    let c = call(&cat, f, &args, &req.query, req.range, opts).unwrap();
    assert!(!c.scalar);
    assert_eq!(
        c.plan.statement.sql,
        "SELECT count(*) AS \"page_total\", coalesce(json_agg(_mg), '[]')::text AS \"body\" \
         FROM (SELECT \"id\" AS \"id\" FROM \"public\".\"cheap_items\"(\"max_price\" := CAST($1 AS numeric)) \
         AS \"items\" WHERE \"id\" > CAST($2 AS integer) ORDER BY \"id\" ASC LIMIT 1) _mg"
    );

    let sqlite = catalog(Dialect::Sqlite);
    let e = call(&sqlite, f, &args, &req.query, req.range, opts).unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (400, "PGRST127"));
}

#[test]
fn put_needs_every_primary_key_filtered_and_matching() {
    let cat = catalog(Dialect::Sqlite);
    let table = cat.table("items").unwrap();
    let payload = |v: serde_json::Value| v.as_object().cloned().unwrap();
    let put = |qs: &str, body: serde_json::Value| {
        let params = QueryParams::decode(qs);
        let req = Request::parse(&params, &RequestHeaders::default()).unwrap();
        check_put(table, &req.query, &payload(body)).map_err(|e| e.code)
    };
    assert_eq!(
        put("id=eq.3", serde_json::json!({"id": 3, "name": "c"})),
        Ok(())
    );
    assert_eq!(put("id=eq.3", serde_json::json!({"id": "3"})), Ok(()));
    assert_eq!(
        put("id=eq.3", serde_json::json!({"id": 4})),
        Err("PGRST115".into())
    );
    assert_eq!(
        put("", serde_json::json!({"id": 3})),
        Err("PGRST105".into())
    );
    assert_eq!(
        put("id=gt.3", serde_json::json!({"id": 3})),
        Err("PGRST105".into())
    );
    assert_eq!(
        put("id=eq.3&name=eq.c", serde_json::json!({"id": 3})),
        Err("PGRST105".into())
    );
}

#[test]
fn order_by_a_to_one_embedded_column_is_a_scalar_subquery() {
    let st = read_on(
        Dialect::Postgres,
        "orders",
        "select=id,c:customers(name)&order=c(name).desc.nullslast",
    )
    .unwrap();
    assert!(
        st.sql.ends_with(
            "FROM \"public\".\"orders\" ORDER BY (SELECT \"name\" FROM \"public\".\"customers\" AS \"_mg1\" \
             WHERE \"_mg1\".\"id\" = \"orders\".\"customer_id\") DESC NULLS LAST) _mg"
        ),
        "{}",
        st.sql
    );
    let e = read_on(
        Dialect::Postgres,
        "customers",
        "select=id,orders(id)&order=orders(id)",
    )
    .unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (400, "PGRST118"));
    let e = read_on(
        Dialect::Postgres,
        "orders",
        "select=id&order=customers(name)",
    )
    .unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (400, "PGRST108"));
}

#[test]
fn null_filters_on_embeddings_are_exists_tests() {
    let st = read_on(
        Dialect::Sqlite,
        "customers",
        "select=id,orders(id)&orders=is.null&orders.total=gt.1",
    )
    .unwrap();
    assert!(
        st.sql.contains(
            "FROM \"main\".\"customers\" WHERE NOT EXISTS (SELECT 1 FROM \"main\".\"orders\" AS \"_mg1\" \
             WHERE \"_mg1\".\"customer_id\" = \"customers\".\"id\" AND \"total\" > ?)"
        ),
        "{}",
        st.sql
    );
    let st = read_on(
        Dialect::Sqlite,
        "customers",
        "select=id,o:orders(id)&o=not.is.null",
    )
    .unwrap();
    assert!(st.sql.contains("WHERE EXISTS (SELECT 1"), "{}", st.sql);
    let e = read_on(Dialect::Sqlite, "customers", "select=id&orders=is.null").unwrap_err();
    assert_eq!(e.code, "42703");
}

/// A write's response with embedding: one CTE statement on PostgreSQL; elsewhere the keys
/// are located (`FOR UPDATE` on MySQL) and the ordinary read runs over exactly those rows,
/// every value still a bind parameter.
#[test]
fn write_responses_read_back_through_the_read_builder() {
    let cat = catalog(Dialect::Postgres);
    let orders = cat.table("orders").unwrap();
    let params = QueryParams::decode("id=eq.7&select=id,customer:customers(name)&order=id.desc");
    let req = Request::parse(&params, &RequestHeaders::default()).unwrap();
    let payload = serde_json::json!({"total": 3})
        .as_object()
        .cloned()
        .unwrap();
    let plan = update(&cat, orders, &req.query, &payload, Returning::Selected)
        .unwrap()
        .unwrap();
    assert_eq!(
        plan.statement.sql,
        "WITH _mg_w AS (UPDATE \"public\".\"orders\" SET \"total\" = CAST($1 AS numeric) \
         WHERE \"id\" = CAST($2 AS integer) RETURNING *) \
         SELECT (SELECT count(*) FROM _mg_w) AS \"page_total\", \
         coalesce(json_agg(_mg), '[]')::text AS \"body\" FROM (SELECT \"id\" AS \"id\", \
         (SELECT row_to_json(\"_mg1r\") FROM (SELECT \"name\" AS \"name\" \
         FROM \"public\".\"customers\" AS \"_mg1\" \
         WHERE \"_mg1\".\"id\" = \"orders\".\"customer_id\") \"_mg1r\") AS \"customer\" \
         FROM _mg_w AS \"orders\" ORDER BY \"id\" DESC) _mg"
    );
    assert!(!written::reads_back(
        &cat,
        orders,
        &req.query,
        written::WriteKind::Update
    ));

    for d in [Dialect::MySql, Dialect::Sqlite] {
        let cat = catalog(d);
        let orders = cat.table("orders").unwrap();
        assert!(written::reads_back(
            &cat,
            orders,
            &req.query,
            written::WriteKind::Delete
        ));
        written::check(&cat, orders, &req.query).unwrap();
        let locate = written::locate(&cat, orders, &req.query).unwrap();
        let keys = vec![vec![Value::Int(7)], vec![Value::Int(9)]];
        let read = written::read_keys(&cat, orders, &req.query, &keys).unwrap();
        let delete = written::delete_keys(&cat, orders, &keys);
        match d {
            Dialect::MySql => {
                assert_eq!(
                    locate.sql,
                    "SELECT `id` FROM `app`.`orders` WHERE `id` = ? FOR UPDATE"
                );
                assert!(
                    read.statement.sql.contains(
                        " FROM (SELECT * FROM `app`.`orders` WHERE `id` IN (?, ?)) AS `orders` \
                         ORDER BY `id` DESC"
                    ),
                    "{}",
                    read.statement.sql
                );
                assert_eq!(
                    delete.sql,
                    "DELETE FROM `app`.`orders` WHERE `id` IN (?, ?)"
                );
            }
            _ => {
                assert_eq!(
                    locate.sql,
                    "SELECT \"id\" FROM \"main\".\"orders\" WHERE \"id\" = ?"
                );
                assert!(read.statement.sql.contains(
                    " FROM (SELECT * FROM \"main\".\"orders\" WHERE \"id\" IN (?, ?)) AS \"orders\""
                ));
            }
        }
        // The root filter went to the write; the read is by key only.
        assert_eq!(
            read.statement
                .binds
                .iter()
                .filter(|b| **b == Value::Int(7))
                .count(),
            1
        );
    }

    // A PATCH that moves a row's key reads it back under its new key; composite keys.
    let cat = catalog(Dialect::MySql);
    let oi = cat.table("order_items").unwrap();
    let params = QueryParams::decode("order_id=eq.1&select=order_id,product_id");
    let req = Request::parse(&params, &RequestHeaders::default()).unwrap();
    let payload = serde_json::json!({"product_id": 5})
        .as_object()
        .cloned()
        .unwrap();
    let keys = vec![vec![Value::Int(1), Value::Int(2)]];
    let up = written::update_keys(&cat, oi, &req.query, &payload, &keys)
        .unwrap()
        .unwrap();
    assert_eq!(
        up.sql,
        "UPDATE `app`.`order_items` SET `product_id` = ? WHERE ((`order_id` = ? AND `product_id` = ?))"
    );
    let keys = written::rekey(&cat, oi, &req.query, &payload, keys).unwrap();
    assert_eq!(keys, vec![vec![Value::Int(1), Value::Int(5)]]);

    // No primary key, no read back: a clear 400 before anything is written.
    let mut schema = cat.schema().clone();
    for t in &mut schema.tables {
        t.primary_key.clear();
    }
    let cat = Catalog::new(schema, Dialect::Sqlite, &["public".to_owned()]);
    let params = QueryParams::decode("select=id,customer:customers(name)");
    let req = Request::parse(&params, &RequestHeaders::default()).unwrap();
    let e = written::check(&cat, cat.table("orders").unwrap(), &req.query).unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (400, "PGRST127"));
    // PostgreSQL's one statement needs no key.
    let cat = Catalog::new(
        cat.schema().clone(),
        Dialect::Postgres,
        &["public".to_owned()],
    );
    let payload = serde_json::json!({"total": 3})
        .as_object()
        .cloned()
        .unwrap();
    let params = QueryParams::decode("id=eq.1&select=id,customer:customers(name)");
    let req = Request::parse(&params, &RequestHeaders::default()).unwrap();
    let orders = cat.table("orders").unwrap();
    assert!(update(&cat, orders, &req.query, &payload, Returning::Selected).is_ok());
}

fn read_gated(d: Dialect, table: &str, qs: &str, aggregates: bool) -> ApiResult<Statement> {
    let cat = catalog(d);
    let params = QueryParams::decode(qs);
    let req = Request::parse(&params, &RequestHeaders::default())?;
    let table = cat.table(table)?;
    let opts = ReadOptions {
        max_rows: None,
        count: false,
        aggregates,
    };
    read(&cat, table, &req.query, req.range, opts).map(|p| p.statement)
}

#[test]
fn aggregates_inside_an_embedding_group_within_it() {
    // Only aggregates: one row per parent, no GROUP BY.
    check_on(
        Dialect::Postgres,
        "customers",
        "select=name,orders(count)",
        "SELECT count(*) AS \"page_total\", coalesce(json_agg(_mg), '[]')::text AS \"body\" \
         FROM (SELECT \"name\" AS \"name\", (SELECT coalesce(json_agg(\"_mg1r\"), '[]') FROM \
         (SELECT count(*) AS \"count\" FROM \"public\".\"orders\" AS \"_mg1\" \
         WHERE \"_mg1\".\"customer_id\" = \"customers\".\"id\") \"_mg1r\") AS \"orders\" \
         FROM \"public\".\"customers\") _mg",
        &[],
    );
    // With other columns: grouped by them inside the subquery, before its order.
    let st = read_on(
        Dialect::Postgres,
        "customers",
        "select=name,orders(customer_id,total.sum())&orders.order=customer_id",
    )
    .unwrap();
    assert!(
        st.sql
            .contains("= \"customers\".\"id\" GROUP BY 1 ORDER BY \"customer_id\""),
        "{}",
        st.sql
    );
    let st = read_on(
        Dialect::Sqlite,
        "customers",
        "select=name,orders(customer_id,total.sum())",
    )
    .unwrap();
    assert!(
        st.sql
            .contains("= \"customers\".\"id\" GROUP BY \"customer_id\") \"_mg1r\""),
        "{}",
        st.sql
    );
    // MariaDB: only aggregates is an array of one object; grouping needs a derived table
    // that could not see the parent row.
    let st = read_on(Dialect::MySql, "customers", "select=name,orders(count())").unwrap();
    assert!(
        st.sql
            .contains("(SELECT JSON_ARRAY(JSON_OBJECT(?, count(*))) FROM `app`.`orders`"),
        "{}",
        st.sql
    );
    let e = read_on(
        Dialect::MySql,
        "customers",
        "select=name,orders(customer_id,count())",
    )
    .expect_err("grouped to-many on MariaDB");
    assert_eq!((e.status, e.code.as_str()), (400, "PGRST127"));
}

#[test]
fn aggregates_beside_an_embedding_group_by_it() {
    // PostgreSQL: the embedding is `jsonb` (json has no equality) and grouped by position.
    let st = read_on(
        Dialect::Postgres,
        "orders",
        "select=customer_id,total.sum(),customers(name)",
    )
    .unwrap();
    assert!(
        st.sql.contains(
            "= \"orders\".\"customer_id\") \"_mg1r\")::jsonb AS \"customers\" \
             FROM \"public\".\"orders\" GROUP BY 1, 3)"
        ),
        "{}",
        st.sql
    );
    // The others repeat the subquery, binds included.
    let st = read_on(
        Dialect::Sqlite,
        "orders",
        "select=total.sum(),customers(name)",
    )
    .unwrap();
    assert!(
        st.sql.contains(
            "GROUP BY (SELECT json_object(?, \"name\") FROM \"main\".\"customers\" AS \"_mg1\" \
             WHERE \"_mg1\".\"id\" = \"orders\".\"customer_id\")"
        ),
        "{}",
        st.sql
    );
    assert_eq!(st.binds.len(), 4, "{st:?}");
    // Spread columns are grouping terms; aggregates inside a spread are not built.
    let st = read_on(
        Dialect::MySql,
        "orders",
        "select=total.sum(),...customers(name)",
    )
    .unwrap();
    assert!(
        st.sql.contains(
            "GROUP BY (SELECT `name` FROM `app`.`customers` AS `_mg1` \
             WHERE `_mg1`.`id` = `orders`.`customer_id`)"
        ),
        "{}",
        st.sql
    );
    let e = read_on(
        Dialect::Postgres,
        "orders",
        "select=id,...customers(id.count())",
    )
    .expect_err("aggregate in a spread");
    assert_eq!((e.status, e.code.as_str()), (400, "PGRST127"));
}

#[test]
fn embedded_aggregates_need_aggregates_enabled_but_legacy_count_does_not() {
    for qs in [
        "select=name,orders(count())",
        "select=name,orders(total.sum())",
    ] {
        let e = read_gated(Dialect::Postgres, "customers", qs, false).expect_err(qs);
        assert_eq!((e.status, e.code.as_str()), (400, "PGRST123"), "{qs}");
    }
    let st = read_gated(
        Dialect::Sqlite,
        "customers",
        "select=name,orders(count)",
        false,
    )
    .unwrap();
    assert!(st.sql.contains("json_object(?, count(*))"), "{}", st.sql);
    // At the root too (`select=count`), as in PostgREST.
    let st = read_gated(Dialect::Sqlite, "customers", "select=count", false).unwrap();
    assert!(st.sql.contains("json_object(?, count(*))"), "{}", st.sql);
}

/// The test catalog plus `orders_view` (`id`, `cust` reading `orders.customer_id`, and
/// `doubled`, an expression) and `people` over `customers`, with the view columns given.
fn catalog_with_views(d: Dialect, given: bool) -> Catalog {
    let base = catalog(d);
    let schema_name = base.schema().tables[0].schema.clone();
    let mut schema = base.schema().clone();
    let view = |name: &str, cols: Vec<Column>| Table {
        schema: schema_name.clone(),
        name: name.into(),
        kind: TableKind::View,
        columns: cols,
        primary_key: Vec::new(),
        unique: Vec::new(),
        foreign_keys: Vec::new(),
        insertable: false,
        comment: None,
    };
    let int = |n: &str| col(n, "integer", ColumnKind::Integer);
    schema.tables.push(view(
        "orders_view",
        vec![
            int("id"),
            int("cust"),
            col("doubled", "numeric", ColumnKind::Number),
        ],
    ));
    schema.tables.push(view(
        "people",
        vec![int("pid"), col("name", "text", ColumnKind::Text)],
    ));
    let cat = Catalog::new(schema, d, &["public".to_owned()]);
    if !given {
        return cat;
    }
    let vc = |v: &str, c: &str, t: &str, tc: &str| {
        views::ViewColumn::from_columns([
            schema_name.clone(),
            v.into(),
            c.into(),
            schema_name.clone(),
            t.into(),
            tc.into(),
        ])
    };
    cat.with_view_columns(&[
        vc("orders_view", "id", "orders", "id"),
        vc("orders_view", "cust", "orders", "customer_id"),
        vc("people", "pid", "customers", "id"),
        vc("people", "name", "customers", "name"),
    ])
}

fn read_views(given: bool, table: &str, qs: &str) -> ApiResult<Statement> {
    let cat = catalog_with_views(Dialect::Postgres, given);
    let params = QueryParams::decode(qs);
    let req = Request::parse(&params, &RequestHeaders::default())?;
    let table = cat.table(table)?;
    read(&cat, table, &req.query, req.range, ReadOptions::default()).map(|p| p.statement)
}

#[test]
fn views_take_part_in_their_tables_relationships() {
    // Many-to-one from a view: an object, joined through the view's column.
    let st = read_views(true, "orders_view", "select=id,customers(name)").unwrap();
    assert!(
        st.sql.contains(
            "(SELECT row_to_json(\"_mg1r\") FROM (SELECT \"name\" AS \"name\" FROM \
             \"public\".\"customers\" AS \"_mg1\" WHERE \"_mg1\".\"id\" = \"orders_view\".\"cust\")"
        ),
        "{}",
        st.sql
    );
    // One-to-many into a view, view to view, and many-to-many through a junction whose
    // key the view exposes.
    let st = read_views(true, "customers", "select=name,orders_view(id)").unwrap();
    assert!(
        st.sql.contains("coalesce(json_agg(\"_mg1r\"), '[]')")
            && st
                .sql
                .contains("WHERE \"_mg1\".\"cust\" = \"customers\".\"id\""),
        "{}",
        st.sql
    );
    let st = read_views(true, "orders_view", "select=id,people(name)").unwrap();
    assert!(
        st.sql
            .contains("WHERE \"_mg1\".\"pid\" = \"orders_view\".\"cust\""),
        "{}",
        st.sql
    );
    let st = read_views(true, "orders_view", "select=id,products(name)").unwrap();
    assert!(
        st.sql
            .contains("\"_mg1j\".\"order_id\" = \"orders_view\".\"id\""),
        "{}",
        st.sql
    );
    // A table and a view of it are not related by that alone, as in PostgREST.
    let e = read_views(true, "customers", "select=name,people(pid)").expect_err("no key");
    assert_eq!(e.code, "PGRST200");
}

#[test]
fn views_without_known_column_sources_have_no_relationships() {
    let e = read_views(false, "orders_view", "select=id,customers(name)").expect_err("no sources");
    assert_eq!((e.status, e.code.as_str()), (400, "PGRST200"));
    // An expression column carries no key: `doubled` exposes nothing.
    let cat = catalog_with_views(Dialect::Postgres, true);
    let people = cat.table("people").unwrap();
    assert_eq!(people.primary_key, ["pid"]);
    let view = cat.table("orders_view").unwrap();
    assert_eq!(view.primary_key, ["id"]);
    assert!(view.foreign_keys.iter().all(|fk| fk.columns == ["cust"]));
}
