//! CSV in and out, as PostgREST offers it: `Accept: text/csv` turns a JSON array of rows
//! into CSV with a header line, and `Content-Type: text/csv` on a POST turns CSV into the
//! same array of rows an insert takes as JSON.
//!
//! The response is converted from the JSON the database built, so CSV shares every code path
//! (filters, embedding, ranges) with JSON; the cost is one parse of the body, paid only by
//! CSV clients. Quoting follows RFC 4180 through the `csv` crate. Values: `null` is an empty
//! field, strings are written as they are, numbers and booleans as in JSON, and nested
//! objects or arrays (JSON columns, embedded resources) as their JSON text.

use indexmap::IndexMap;
use serde_json::Value;

use crate::api_error::{ApiError, ApiResult};

/// The media type of CSV responses.
pub const CSV: &str = "text/csv; charset=utf-8";

/// One row, with its keys in the order the database wrote them.
type OrderedRow = IndexMap<String, Value>;

/// A JSON array of objects (a response body) as CSV: a header line from the first row's
/// keys, then one line per row. An empty array gives an empty body.
pub fn from_json_rows(body: &str) -> ApiResult<String> {
    let rows: Vec<OrderedRow> = serde_json::from_str(body).map_err(|e| {
        ApiError::new(
            406,
            "PGRST107",
            "This response cannot be represented as CSV",
        )
        .details(e.to_string())
    })?;
    let Some(first) = rows.first() else {
        return Ok(String::new());
    };
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::with_capacity(body.len()));
    let header: Vec<&str> = first.keys().map(String::as_str).collect();
    out.write_record(&header).map_err(write_failed)?;
    for row in &rows {
        let fields = header.iter().map(|k| field(row.get(*k)));
        out.write_record(fields).map_err(write_failed)?;
    }
    let bytes = out.into_inner().map_err(|e| write_failed(e.into_error()))?;
    String::from_utf8(bytes).map_err(|e| write_failed(std::io::Error::other(e)))
}

fn field(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn write_failed(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(500, "MG500", "Could not write the CSV response").details(e.to_string())
}

/// A CSV request body as a JSON array of objects: the first line names the columns, every
/// field is a string (the database casts it to the column's type, as PostgREST lets it),
/// and the unquoted word `NULL` is SQL NULL, as in PostgREST.
pub fn to_json_rows(bytes: &[u8]) -> ApiResult<Value> {
    let invalid = |e: csv::Error| {
        ApiError::new(400, "PGRST102", "Empty or invalid CSV").details(e.to_string())
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .map_err(invalid)?
        .iter()
        .map(str::to_owned)
        .collect();
    if header.iter().all(String::is_empty) {
        return Err(ApiError::new(400, "PGRST102", "Empty or invalid CSV")
            .details("The first line must name the columns"));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(invalid)?;
        let row: serde_json::Map<String, Value> = header
            .iter()
            .zip(record.iter())
            .map(|(k, v)| {
                let value = if v == "NULL" {
                    Value::Null
                } else {
                    Value::String(v.to_owned())
                };
                (k.clone(), value)
            })
            .collect();
        rows.push(Value::Object(row));
    }
    Ok(Value::Array(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_csv_with_quoting_and_key_order() {
        let body = r#"[{"id":2,"name":"O'Brien, Pat","ok":true,"note":null,"data":{"a":1}},
                       {"id":10,"name":"say \"hi\"","ok":false,"note":"x","data":[1]}]"#;
        let csv = from_json_rows(body).unwrap();
        assert_eq!(
            csv,
            "id,name,ok,note,data\n\
             2,\"O'Brien, Pat\",true,,\"{\"\"a\"\":1}\"\n\
             10,\"say \"\"hi\"\"\",false,x,[1]\n"
        );
    }

    #[test]
    fn an_empty_result_is_an_empty_body_and_a_scalar_is_refused() {
        assert_eq!(from_json_rows("[]").unwrap(), "");
        assert_eq!(from_json_rows("42").unwrap_err().status, 406);
    }

    #[test]
    fn csv_bodies_become_rows_with_null() {
        let rows = to_json_rows(b"name,qty\n\"a, b\",3\nc,NULL\n").unwrap();
        assert_eq!(
            rows,
            serde_json::json!([{"name":"a, b","qty":"3"},{"name":"c","qty":null}])
        );
        assert_eq!(to_json_rows(b"a,b\n1\n").unwrap_err().status, 400);
        assert_eq!(to_json_rows(b"").unwrap_err().status, 400);
    }
}
