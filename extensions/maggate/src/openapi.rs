//! The OpenAPI 3.1 document MagGate serves at its root, generated from the schema cache.
//!
//! PostgREST serves Swagger 2.0 at `/`; we keep its paths (`/{table}`, `/rpc/{function}`),
//! its parameter names (`select`, `order`, `limit`, `offset`, `Range`, `Prefer`, one
//! `rowFilter` per column) and its table schemas (one object schema per table whose
//! properties carry the database type as `format` and the primary key note in the
//! description), written as OpenAPI 3.1 so current tooling (code generators, Swagger UI,
//! schemathesis) reads it without conversion. It is rebuilt on each request to the root,
//! which is rare; nothing is cached that a schema reload could leave stale.

use magmobo_core::roles::schema::{Column, ColumnKind, Function, Table, TableKind};
use serde_json::{Map, Value, json};

use crate::sql::Catalog;

/// The document for `catalog`, served under `prefix` (e.g. `/rest/v1`).
pub fn document(catalog: &Catalog, prefix: &str) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let mut parameters = common_parameters();
    paths.insert(
        "/".to_owned(),
        json!({ "get": {
            "tags": ["Introspection"],
            "summary": "OpenAPI description (this document)",
            "responses": { "200": { "description": "OK" } }
        }}),
    );
    for table in catalog.exposed_tables() {
        schemas.insert(table.name.clone(), table_schema(table));
        for column in &table.columns {
            let mut filter = json!({
                "name": column.name,
                "in": "query",
                "required": false,
                "schema": { "type": "string", "format": column.data_type },
            });
            if let Some(comment) = &column.comment {
                filter["description"] = json!(comment);
            }
            parameters.insert(format!("rowFilter.{}.{}", table.name, column.name), filter);
        }
        paths.insert(format!("/{}", table.name), table_path(table));
    }
    for function in &catalog.schema().functions {
        if catalog.exposes_schema(&function.schema)
            && function.params.iter().all(|p| !p.name.is_empty())
        {
            paths.insert(format!("/rpc/{}", function.name), rpc_path(function));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "MagGate",
            "description": "A PostgREST-compatible REST API generated from the database schema",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "servers": [{ "url": prefix }],
        "paths": paths,
        "components": { "schemas": schemas, "parameters": parameters },
    })
}

fn param_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/parameters/{name}") })
}

fn common_parameters() -> Map<String, Value> {
    let query = |name: &str, description: &str| {
        json!({ "name": name, "in": "query", "required": false, "description": description,
                "schema": { "type": "string" } })
    };
    let header = |name: &str, description: &str| {
        json!({ "name": name, "in": "header", "required": false, "description": description,
                "schema": { "type": "string" } })
    };
    let mut p = Map::new();
    p.insert("select".into(), query("select", "Filtering Columns"));
    p.insert("order".into(), query("order", "Ordering"));
    p.insert("limit".into(), query("limit", "Limiting and Pagination"));
    p.insert("offset".into(), query("offset", "Limiting and Pagination"));
    p.insert("on_conflict".into(), query("on_conflict", "On Conflict"));
    p.insert("columns".into(), query("columns", "Columns to insert"));
    p.insert("range".into(), header("Range", "Limiting and Pagination"));
    p.insert(
        "rangeUnit".into(),
        header("Range-Unit", "Limiting and Pagination"),
    );
    p.insert(
        "preferParams".into(),
        header("Prefer", "Preference: params=single-object"),
    );
    p.insert(
        "preferReturn".into(),
        header(
            "Prefer",
            "Preference: return=minimal | headers-only | representation",
        ),
    );
    p.insert(
        "preferCount".into(),
        header("Prefer", "Preference: count=exact | planned | estimated"),
    );
    p.insert(
        "preferPost".into(),
        header(
            "Prefer",
            "Preference: return=..., resolution=merge-duplicates | ignore-duplicates, missing=default",
        ),
    );
    p
}

/// JSON Schema type of a column family.
fn json_type(kind: ColumnKind) -> &'static str {
    match kind {
        ColumnKind::Integer => "integer",
        ColumnKind::Number => "number",
        ColumnKind::Boolean => "boolean",
        ColumnKind::Array => "array",
        ColumnKind::Json => "object",
        ColumnKind::Text
        | ColumnKind::Temporal
        | ColumnKind::Binary
        | ColumnKind::Uuid
        | ColumnKind::Other => "string",
    }
}

fn column_schema(table: &Table, column: &Column) -> Value {
    let mut s = Map::new();
    let base = json_type(column.kind);
    // JSON columns hold any JSON value; everything else may be null when nullable (3.1
    // writes that as a type list).
    if column.kind != ColumnKind::Json {
        s.insert(
            "type".into(),
            if column.nullable {
                json!([base, "null"])
            } else {
                json!(base)
            },
        );
    }
    s.insert("format".into(), json!(column.data_type));
    let mut notes = Vec::new();
    if let Some(comment) = &column.comment {
        notes.push(comment.clone());
    }
    if table.primary_key.contains(&column.name) {
        notes.push("Note:\nThis is a Primary Key.<pk/>".to_owned());
    }
    for fk in &table.foreign_keys {
        if let Some(i) = fk.columns.iter().position(|c| c == &column.name) {
            let target = fk.foreign_columns.get(i).map_or("", String::as_str);
            notes.push(format!(
                "Note:\nThis is a Foreign Key to `{}.{}`.<fk table='{}' column='{}'/>",
                fk.foreign_table, target, fk.foreign_table, target
            ));
        }
    }
    if !notes.is_empty() {
        s.insert("description".into(), json!(notes.join("\n\n")));
    }
    if let Some(default) = &column.default {
        s.insert("default".into(), json!(default));
    }
    if !column.enum_values.is_empty() {
        s.insert("enum".into(), json!(column.enum_values));
    }
    if column.generated {
        s.insert("readOnly".into(), json!(true));
    }
    Value::Object(s)
}

fn table_schema(table: &Table) -> Value {
    let properties: Map<String, Value> = table
        .columns
        .iter()
        .map(|c| (c.name.clone(), column_schema(table, c)))
        .collect();
    let required: Vec<&str> = table
        .columns
        .iter()
        .filter(|c| !c.nullable && c.default.is_none() && !c.generated)
        .map(|c| c.name.as_str())
        .collect();
    let mut s = json!({ "type": "object", "properties": properties, "required": required });
    if let Some(comment) = &table.comment {
        s["description"] = json!(comment);
    }
    s
}

fn table_path(table: &Table) -> Value {
    let schema_ref = json!({ "$ref": format!("#/components/schemas/{}", table.name) });
    let filters: Vec<Value> = table
        .columns
        .iter()
        .map(|c| param_ref(&format!("rowFilter.{}.{}", table.name, c.name)))
        .collect();
    let with = |names: &[&str]| -> Vec<Value> {
        let mut v: Vec<Value> = filters.clone();
        v.extend(names.iter().map(|n| param_ref(n)));
        v
    };
    let rows = json!({ "type": "array", "items": schema_ref });
    let tag = [table.name.as_str()];
    let mut path = Map::new();
    path.insert(
        "get".into(),
        json!({
            "tags": tag,
            "parameters": with(&["select", "order", "range", "rangeUnit", "offset", "limit", "preferCount"]),
            "responses": {
                "200": { "description": "OK", "content": {
                    "application/json": { "schema": rows },
                    "application/vnd.pgrst.object+json": { "schema": schema_ref },
                    "text/csv": { "schema": { "type": "string" } },
                }},
                "206": { "description": "Partial Content" },
            },
        }),
    );
    let writable = table.kind == TableKind::Table || table.insertable;
    if writable {
        let body = json!({ "content": {
            "application/json": { "schema": { "oneOf": [schema_ref, rows] } },
            "text/csv": { "schema": { "type": "string" } },
        }});
        path.insert(
            "post".into(),
            json!({
                "tags": tag,
                "parameters": [param_ref("select"), param_ref("columns"), param_ref("on_conflict"), param_ref("preferPost")],
                "requestBody": body,
                "responses": { "201": { "description": "Created" } },
            }),
        );
        path.insert(
            "patch".into(),
            json!({
                "tags": tag,
                "parameters": with(&["preferReturn"]),
                "requestBody": { "content": { "application/json": { "schema": schema_ref } } },
                "responses": { "204": { "description": "No Content" } },
            }),
        );
        path.insert(
            "delete".into(),
            json!({
                "tags": tag,
                "parameters": with(&["preferReturn"]),
                "responses": { "204": { "description": "No Content" } },
            }),
        );
    }
    Value::Object(path)
}

fn rpc_path(function: &Function) -> Value {
    let properties: Map<String, Value> = function
        .params
        .iter()
        .map(|p| (p.name.clone(), json!({ "format": p.data_type })))
        .collect();
    let required: Vec<&str> = function
        .params
        .iter()
        .filter(|p| !p.has_default)
        .map(|p| p.name.as_str())
        .collect();
    let tag = ["(rpc) ".to_owned() + &function.name];
    let mut path = json!({
        "post": {
            "tags": tag,
            "parameters": [param_ref("preferParams")],
            "requestBody": { "required": true, "content": { "application/json": { "schema": {
                "type": "object", "properties": properties, "required": required,
            }}}},
            "responses": { "200": { "description": "OK" } },
        }
    });
    if function.read_only {
        let query: Vec<Value> = function
            .params
            .iter()
            .map(|p| {
                json!({ "name": p.name, "in": "query", "required": !p.has_default,
                        "schema": { "type": "string", "format": p.data_type } })
            })
            .collect();
        path["get"] = json!({
            "tags": tag,
            "parameters": query,
            "responses": { "200": { "description": "OK" } },
        });
    }
    path
}
