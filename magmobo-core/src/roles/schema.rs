//! The dialect-neutral schema model that storage drivers introspect into and MagGate serves
//! from. Identifiers in SQL built for users come only from this model, never from a request.

use serde::{Deserialize, Serialize};

/// Everything introspected from one database.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// Tables and views, in a stable order (schema, then name).
    pub tables: Vec<Table>,
    /// Functions callable through RPC (PostgreSQL only; empty elsewhere).
    pub functions: Vec<Function>,
    /// A cheap fingerprint of the structure: equal fingerprints mean nothing changed.
    pub fingerprint: String,
}

impl Schema {
    /// The table or view `name` in `schema`.
    pub fn table(&self, schema: &str, name: &str) -> Option<&Table> {
        self.tables
            .iter()
            .find(|t| t.schema == schema && t.name == name)
    }
}

/// Whether a relation is a table or a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    /// A base table.
    Table,
    /// A view (or materialized view).
    View,
}

/// One table or view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Schema (`public`, or the database name on MySQL, `main` on SQLite).
    pub schema: String,
    /// Name.
    pub name: String,
    /// Table or view.
    pub kind: TableKind,
    /// Columns in ordinal order.
    pub columns: Vec<Column>,
    /// Primary key columns, in key order; empty when there is none.
    pub primary_key: Vec<String>,
    /// Unique constraints (each a list of columns), primary key excluded.
    pub unique: Vec<Vec<String>>,
    /// Foreign keys from this table.
    pub foreign_keys: Vec<ForeignKey>,
    /// Whether rows can be inserted (false for most views).
    pub insertable: bool,
    /// Table comment, if any.
    pub comment: Option<String>,
}

impl Table {
    /// The column `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// One column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// Name.
    pub name: String,
    /// The type as the database names it (`integer`, `text`, `varchar(255)`, `jsonb`...).
    pub data_type: String,
    /// The dialect-neutral family of that type.
    pub kind: ColumnKind,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// Default expression as the database reports it.
    pub default: Option<String>,
    /// Whether the value is generated (computed or identity ALWAYS) and cannot be written.
    pub generated: bool,
    /// Allowed values for enum types.
    pub enum_values: Vec<String>,
    /// Column comment, if any.
    pub comment: Option<String>,
}

/// Type families MagGate needs to bind and render values correctly on every dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    /// Integers of any width.
    Integer,
    /// Floating point and fixed-point numbers.
    Number,
    /// Booleans.
    Boolean,
    /// Text of any kind, including enums and UUIDs stored as text.
    Text,
    /// JSON documents.
    Json,
    /// Dates, times and timestamps.
    Temporal,
    /// Binary data.
    Binary,
    /// UUID (native type).
    Uuid,
    /// Arrays (PostgreSQL).
    Array,
    /// Anything else; handled as text.
    Other,
}

/// A foreign key: `columns` of this table reference `foreign_columns` of another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    /// Constraint name (used for `!hint` disambiguation).
    pub name: String,
    /// Referencing columns.
    pub columns: Vec<String>,
    /// Referenced schema.
    pub foreign_schema: String,
    /// Referenced table.
    pub foreign_table: String,
    /// Referenced columns.
    pub foreign_columns: Vec<String>,
}

/// A function callable through RPC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Function {
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
    /// Parameters in order.
    pub params: Vec<FunctionParam>,
    /// The return type as the database names it.
    pub returns: String,
    /// Whether it returns a set of rows.
    pub returns_set: bool,
    /// Whether it is declared IMMUTABLE or STABLE (callable with GET).
    pub read_only: bool,
    /// The columns of its result rows when it declares them itself (`RETURNS TABLE (...)`
    /// or OUT parameters), in order; empty otherwise.
    #[serde(default)]
    pub returns_columns: Vec<Column>,
}

/// One function parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionParam {
    /// Name (empty for unnamed parameters, which RPC cannot call by name).
    pub name: String,
    /// Type as the database names it.
    pub data_type: String,
    /// Whether it has a default.
    pub has_default: bool,
}
