//! Relationships through views, as PostgREST infers them: a view whose columns read a
//! table's key columns unchanged takes part in that table's foreign keys (as the
//! referencing or the referenced side, or both when views sit on both tables) and gets
//! its primary key and unique constraints, so `embed::resolve` finds relationships through
//! views like any other. `GET /orders_view?select=*,customers(name)` then embeds through
//! `orders.customer_id` when `orders_view` selects that column unchanged.
//!
//! The schema model holds no view definitions, so where each view column comes from is
//! supplied as [`ViewColumn`]s: on PostgreSQL, the rows of [`VIEW_COLUMNS_PG`], which reads
//! the origin PostgreSQL's parser records for every plain column reference of a view (the
//! `resorigtbl`/`resorigcol` of the rule's target entries; an expression has none).
//! Columns of views over views are followed down to the base table.

use std::collections::HashMap;

use magmobo_core::roles::schema::{ForeignKey, Schema, Table, TableKind};

/// PostgreSQL: one row per view column that reads a column of another relation unchanged,
/// as `view_schema, view_name, view_column, source_schema, source_table, source_column`
/// (read them with [`ViewColumn::from_columns`]). A column whose entries in the rule's node
/// tree disagree (a subquery's column of the same name and position) is left out rather
/// than guessed.
pub const VIEW_COLUMNS_PG: &str = r"WITH entries AS (
    SELECT r.ev_class AS view_oid, m[1]::int AS resno, m[2] AS resname,
           m[3]::oid AS origtbl, m[4]::int AS origcol
    FROM pg_rewrite r
    JOIN pg_class c ON c.oid = r.ev_class AND c.relkind IN ('v', 'm')
    JOIN pg_namespace n ON n.oid = c.relnamespace
        AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    CROSS JOIN LATERAL regexp_matches(r.ev_action::text,
        ':resno (\d+) :resname (\S+) :ressortgroupref \d+ :resorigtbl (\d+) :resorigcol (\d+) :resjunk false',
        'g') AS m
), agreed AS (
    SELECT e.view_oid, e.resno, min(e.origtbl) AS origtbl, min(e.origcol) AS origcol
    FROM entries e
    JOIN pg_attribute a ON a.attrelid = e.view_oid AND a.attnum = e.resno
        AND a.attname::text = e.resname
    GROUP BY e.view_oid, e.resno
    HAVING count(DISTINCT (e.origtbl, e.origcol)) = 1 AND min(e.origtbl) <> 0
)
SELECT vn.nspname::text AS view_schema, vc.relname::text AS view_name,
       va.attname::text AS view_column, sn.nspname::text AS source_schema,
       sc.relname::text AS source_table, sa.attname::text AS source_column
FROM agreed k
JOIN pg_class vc ON vc.oid = k.view_oid
JOIN pg_namespace vn ON vn.oid = vc.relnamespace
JOIN pg_attribute va ON va.attrelid = k.view_oid AND va.attnum = k.resno
JOIN pg_class sc ON sc.oid = k.origtbl
JOIN pg_namespace sn ON sn.oid = sc.relnamespace
JOIN pg_attribute sa ON sa.attrelid = k.origtbl AND sa.attnum = k.origcol
WHERE vn.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1, 2, 3";

/// A view column that reads a column of another relation (a table or a view) unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewColumn {
    /// The view's schema.
    pub view_schema: String,
    /// The view.
    pub view: String,
    /// The view's column.
    pub column: String,
    /// The schema of the relation it reads.
    pub source_schema: String,
    /// The relation it reads.
    pub source: String,
    /// The column it reads.
    pub source_column: String,
}

impl ViewColumn {
    /// From the six text columns of a [`VIEW_COLUMNS_PG`] row, in order.
    pub fn from_columns(cols: [String; 6]) -> ViewColumn {
        let [
            view_schema,
            view,
            column,
            source_schema,
            source,
            source_column,
        ] = cols;
        ViewColumn {
            view_schema,
            view,
            column,
            source_schema,
            source,
            source_column,
        }
    }
}

/// `(schema, name)` of a relation.
type Rel = (String, String);

/// For one relation standing for a base table: base column → its column there.
type Exposed = HashMap<String, String>;

/// Views over views are followed this deep, which bounds a cycle in bad input.
const MAX_DEPTH: usize = 16;

/// The base table column `(schema, table, column)` a view column reads, following views.
fn base_of(
    direct: &HashMap<(String, String, String), (String, String, String)>,
    schema: &Schema,
    start: (String, String, String),
) -> Option<(String, String, String)> {
    let mut at = start;
    for _ in 0..MAX_DEPTH {
        let next = direct.get(&at)?.clone();
        match schema.table(&next.0, &next.1) {
            Some(t) if t.kind == TableKind::Table => return Some(next),
            Some(_) => at = next,
            None => return None,
        }
    }
    None
}

/// For each base table, the views that expose some of its columns, with the mapping.
fn aliases(schema: &Schema, cols: &[ViewColumn]) -> HashMap<Rel, Vec<(Rel, Exposed)>> {
    let direct: HashMap<_, _> = cols
        .iter()
        .map(|c| {
            (
                (c.view_schema.clone(), c.view.clone(), c.column.clone()),
                (
                    c.source_schema.clone(),
                    c.source.clone(),
                    c.source_column.clone(),
                ),
            )
        })
        .collect();
    let mut by_view: HashMap<Rel, HashMap<Rel, Exposed>> = HashMap::new();
    for c in cols {
        let start = (c.view_schema.clone(), c.view.clone(), c.column.clone());
        let Some((bs, bt, bc)) = base_of(&direct, schema, start) else {
            continue;
        };
        // The first view column reading a base column stands for it.
        by_view
            .entry((c.view_schema.clone(), c.view.clone()))
            .or_default()
            .entry((bs, bt))
            .or_default()
            .entry(bc)
            .or_insert_with(|| c.column.clone());
    }
    let mut out: HashMap<Rel, Vec<(Rel, Exposed)>> = HashMap::new();
    for (view, bases) in by_view {
        for (base, exposed) in bases {
            out.entry(base).or_default().push((view.clone(), exposed));
        }
    }
    for views in out.values_mut() {
        // A stable order, whatever the hash map's.
        views.sort_by(|a, b| a.0.cmp(&b.0));
    }
    out
}

fn mapped(exposed: &Exposed, cols: &[String]) -> Option<Vec<String>> {
    cols.iter().map(|c| exposed.get(c).cloned()).collect()
}

fn table_mut<'s>(schema: &'s mut Schema, rel: &Rel) -> Option<&'s mut Table> {
    schema
        .tables
        .iter_mut()
        .find(|t| t.schema == rel.0 && t.name == rel.1)
}

/// Adds to `schema` the keys views inherit from the tables they read: primary key and
/// unique constraints (when every column is exposed), and each foreign key between two
/// tables once for every pair of relations standing for them (table or view) other than
/// the two tables themselves, when both sides' columns are exposed.
pub(crate) fn infer(schema: &mut Schema, cols: &[ViewColumn]) {
    let aliases = aliases(schema, cols);
    let mut keys: Vec<(Rel, Vec<String>, Vec<Vec<String>>)> = Vec::new();
    let mut fks: Vec<(Rel, ForeignKey)> = Vec::new();
    for t in schema.tables.iter().filter(|t| t.kind == TableKind::Table) {
        let rel = (t.schema.clone(), t.name.clone());
        let views = aliases.get(&rel).map_or(&[][..], Vec::as_slice);
        for (view, exposed) in views {
            let pk = mapped(exposed, &t.primary_key).unwrap_or_default();
            let unique = t.unique.iter().filter_map(|u| mapped(exposed, u)).collect();
            keys.push((view.clone(), pk, unique));
        }
        for fk in &t.foreign_keys {
            let target = (fk.foreign_schema.clone(), fk.foreign_table.clone());
            let identity = |r: &Rel, cols: &[String]| (r.clone(), cols.to_vec());
            let sources = std::iter::once(identity(&rel, &fk.columns)).chain(
                views
                    .iter()
                    .filter_map(|(v, e)| Some((v.clone(), mapped(e, &fk.columns)?))),
            );
            let target_views = aliases.get(&target).map_or(&[][..], Vec::as_slice);
            let targets: Vec<(Rel, Vec<String>)> =
                std::iter::once(identity(&target, &fk.foreign_columns))
                    .chain(
                        target_views.iter().filter_map(|(v, e)| {
                            Some((v.clone(), mapped(e, &fk.foreign_columns)?))
                        }),
                    )
                    .collect();
            for (source, columns) in sources {
                for (to, foreign_columns) in &targets {
                    if source == rel && *to == target {
                        continue;
                    }
                    let inferred = ForeignKey {
                        name: fk.name.clone(),
                        columns: columns.clone(),
                        foreign_schema: to.0.clone(),
                        foreign_table: to.1.clone(),
                        foreign_columns: foreign_columns.clone(),
                    };
                    fks.push((source.clone(), inferred));
                }
            }
        }
    }
    for (view, pk, unique) in keys {
        if let Some(v) = table_mut(schema, &view) {
            if v.primary_key.is_empty() {
                v.primary_key = pk;
            }
            for u in unique {
                if !v.unique.contains(&u) {
                    v.unique.push(u);
                }
            }
        }
    }
    for (source, fk) in fks {
        if let Some(t) = table_mut(schema, &source)
            && !t.foreign_keys.contains(&fk)
        {
            t.foreign_keys.push(fk);
        }
    }
}
