//! One SQL statement made of data-modifying CTEs: how an append writes its events and every
//! table kept with them (identifier claims, consent and membership indexes, the read models) in
//! ONE round trip that is also one transaction, and how a rebuild writes a chunk of rows.
//!
//! Every table's SQL is written by the module that owns the table; this module only strings
//! the parts together. Each part reads its rows from `UNNEST` over one bound array per column,
//! so a statement's text depends only on which tables it touches, never on how many rows it
//! writes: PostgreSQL parses and plans it once per connection (sqlx caches the prepared
//! statement by its text).
//!
//! The parts of one statement run in an order PostgreSQL does not promise. Where order
//! matters, a part waits for another by reading it in its `WHERE` (`after`): an uncorrelated
//! subquery there is evaluated once, in full, before the part writes its first row.

use sqlx::{Encode, Postgres, QueryBuilder, Type};

pub struct Statement<'a> {
    qb: QueryBuilder<'a, Postgres>,
    parts: usize,
    /// A condition every write added from now on waits for (`true` when there is none).
    guard: String,
}

impl Default for Statement<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> Statement<'a> {
    pub fn new() -> Self {
        Self {
            qb: QueryBuilder::new("WITH "),
            parts: 0,
            guard: "true".to_owned(),
        }
    }

    /// Whether nothing has been added.
    pub fn is_empty(&self) -> bool {
        self.parts == 0
    }

    /// Adds `name AS (body)`. `body` writes the part's SQL and gets the condition its rows must
    /// meet (`WHERE {guard}`), which orders it after the statement's guard, if any.
    pub fn part(&mut self, name: &str, body: impl FnOnce(&mut QueryBuilder<'a, Postgres>, &str)) {
        if self.parts > 0 {
            self.qb.push(", ");
        }
        self.qb.push(name).push(" AS (");
        body(&mut self.qb, &self.guard);
        self.qb.push(")");
        self.parts += 1;
    }

    /// Makes every part added from now on wait until part `name` has run to its end.
    pub fn guard_with(&mut self, name: &str) {
        self.guard = format!("{} AND {}", self.guard, after(name));
    }

    /// The statement, ending in `select` (which may read the parts).
    pub fn finish(mut self, select: &str) -> QueryBuilder<'a, Postgres> {
        self.qb.push(" ").push(select);
        self.qb
    }
}

/// A condition that holds once part `name` has run to its end (and is always true then).
pub fn after(name: &str) -> String {
    format!("(SELECT count(*) FROM {name}) >= 0")
}

/// `UNNEST($1::text[], $2::bigint[], …) AS alias(a, b, …)`: one bound array per column.
pub struct Unnest<'q, 'a> {
    qb: &'q mut QueryBuilder<'a, Postgres>,
    columns: Vec<&'static str>,
}

impl<'q, 'a> Unnest<'q, 'a> {
    pub fn new(qb: &'q mut QueryBuilder<'a, Postgres>) -> Self {
        qb.push("UNNEST(");
        Self {
            qb,
            columns: Vec::new(),
        }
    }

    /// A column named `name`, of SQL type `sql_type` (its array type is `sql_type[]`).
    pub fn column<T>(mut self, name: &'static str, sql_type: &str, values: Vec<T>) -> Self
    where
        Vec<T>: 'a + Encode<'a, Postgres> + Type<Postgres>,
    {
        if !self.columns.is_empty() {
            self.qb.push(", ");
        }
        self.qb
            .push_bind(values)
            .push("::")
            .push(sql_type)
            .push("[]");
        self.columns.push(name);
        self
    }

    pub fn finish(self, alias: &str) {
        self.qb
            .push(") AS ")
            .push(alias)
            .push("(")
            .push(self.columns.join(", "))
            .push(")");
    }
}

/// One column of `rows`, for `Unnest::column`.
pub fn map<'a, R, T>(rows: &'a [R], column: impl Fn(&'a R) -> T) -> Vec<T> {
    rows.iter().map(column).collect()
}

/// A PostgreSQL array literal of texts (`{"a","b\"c"}`), for a `text[]` per row, which an
/// `UNNEST` of arrays cannot carry (arrays of arrays must be rectangular): it travels as text
/// and is cast back with `::text[]`.
pub fn text_array_literal<'s>(items: impl IntoIterator<Item = &'s str>) -> String {
    let mut literal = String::from("{");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            literal.push(',');
        }
        literal.push('"');
        for c in item.chars() {
            if c == '"' || c == '\\' {
                literal.push('\\');
            }
            literal.push(c);
        }
        literal.push('"');
    }
    literal.push('}');
    literal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_literals_quote_every_item() {
        assert_eq!(text_array_literal([]), "{}");
        assert_eq!(
            text_array_literal(["a", "b,c", "d\"e\\f", "NULL", ""]),
            r#"{"a","b,c","d\"e\\f","NULL",""}"#
        );
    }
}
