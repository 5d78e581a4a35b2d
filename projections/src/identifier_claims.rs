//! Live identifiers, claimed and released inside the append statement of the events that add
//! or invalidate them (DESIGN invariant 3): the table's primary key `(system, value)` makes "no
//! two registrants hold one `system|value`" hold under concurrency, and the table is the index
//! that resolves an external identifier to its stream.

use std::collections::HashMap;

use openspp_aggregates::Identifier;
use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::statement::{after, map, Statement, Unnest};

/// The claims and releases of one append, netted per identifier: what the table must hold
/// after it, whatever the order of the events that led there.
#[derive(Default)]
pub struct Claims {
    /// Per `(system, value)`: who held it before the append (if an event released it) and who
    /// holds it after (if the last event claimed it).
    changes: HashMap<(String, String), Change>,
    /// An identifier two streams of the append both claim.
    clash: Option<Identifier>,
}

struct Change {
    identifier: Identifier,
    before: Option<Holder>,
    after: Option<Holder>,
}

#[derive(Clone, PartialEq, Eq)]
struct Holder {
    aggregate_type: String,
    aggregate_id: String,
}

impl Claims {
    pub fn claim(&mut self, aggregate_type: &str, aggregate_id: &str, identifier: &Identifier) {
        let holder = Holder {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
        };
        let change = self.change(identifier, None);
        let clashes = change.after.as_ref().is_some_and(|held| *held != holder);
        change.after = Some(holder);
        if clashes && self.clash.is_none() {
            self.clash = Some(identifier.clone());
        }
    }

    /// An identifier two streams of this append both claim: the append must be refused, as
    /// the second claim would be if the two were appended one after the other.
    pub fn clash(&self) -> Option<&Identifier> {
        self.clash.as_ref()
    }

    pub fn release(&mut self, aggregate_type: &str, aggregate_id: &str, identifier: &Identifier) {
        let holder = Holder {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
        };
        self.change(identifier, Some(holder)).after = None;
    }

    /// The entry of `identifier`; `before` is recorded only by its first event.
    fn change(&mut self, identifier: &Identifier, before: Option<Holder>) -> &mut Change {
        self.changes
            .entry((identifier.system.clone(), identifier.value.clone()))
            .or_insert_with(|| Change {
                identifier: identifier.clone(),
                before,
                after: None,
            })
    }

    /// The identifiers this append claims, in the order their rows are inserted.
    pub fn claimed(&self) -> Vec<&Identifier> {
        self.inserts()
            .into_iter()
            .map(|(c, _)| &c.identifier)
            .collect()
    }

    fn inserts(&self) -> Vec<(&Change, &Holder)> {
        let mut inserts: Vec<(&Change, &Holder)> = self
            .changes
            .values()
            .filter_map(|c| match (&c.before, &c.after) {
                (before, Some(after)) if before.as_ref() != Some(after) => Some((c, after)),
                _ => None,
            })
            .collect();
        // One order for every writer, so two appends claiming the same identifiers wait for
        // each other instead of deadlocking.
        inserts.sort_by(|a, b| {
            (&a.0.identifier.system, &a.0.identifier.value)
                .cmp(&(&b.0.identifier.system, &b.0.identifier.value))
        });
        inserts
    }

    fn deletes(&self) -> Vec<(&Change, &Holder)> {
        self.changes
            .values()
            .filter_map(|c| match (&c.before, &c.after) {
                (Some(before), after) if after.as_ref() != Some(before) => Some((c, before)),
                _ => None,
            })
            .collect()
    }

    /// Adds the releases, then the claims (which wait for the releases, so an identifier moved
    /// between two streams of one append never meets itself). A claim of an identifier another
    /// stream holds waits for the holder's transaction, then fails the statement with a unique
    /// violation of `identifier_claims_unique`: the key, not a read, decides.
    pub fn push_into<'a>(&'a self, statement: &mut Statement<'a>) {
        let deletes = self.deletes();
        let inserts = self.inserts();
        if !deletes.is_empty() {
            statement.part("identifiers_released", |qb, guard| {
                qb.push("DELETE FROM identifier_claims c USING ");
                Unnest::new(qb)
                    .column(
                        "system",
                        "text",
                        map(&deletes, |d| d.0.identifier.system.as_str()),
                    )
                    .column(
                        "value",
                        "text",
                        map(&deletes, |d| d.0.identifier.value.as_str()),
                    )
                    .column(
                        "aggregate_type",
                        "text",
                        map(&deletes, |d| d.1.aggregate_type.as_str()),
                    )
                    .column(
                        "aggregate_id",
                        "text",
                        map(&deletes, |d| d.1.aggregate_id.as_str()),
                    )
                    .finish("r");
                qb.push(
                    " WHERE c.system = r.system AND c.value = r.value \
                     AND c.aggregate_type = r.aggregate_type AND c.aggregate_id = r.aggregate_id \
                     AND ",
                )
                .push(guard)
                .push(" RETURNING 1");
            });
        }
        if !inserts.is_empty() {
            let released = if deletes.is_empty() {
                String::new()
            } else {
                format!(" AND {}", after("identifiers_released"))
            };
            statement.part("identifiers_claimed", |qb, guard| {
                qb.push(
                    "INSERT INTO identifier_claims (system, value, aggregate_type, aggregate_id) \
                     SELECT system, value, aggregate_type, aggregate_id FROM ",
                );
                Unnest::new(qb)
                    .column(
                        "system",
                        "text",
                        map(&inserts, |i| i.0.identifier.system.as_str()),
                    )
                    .column(
                        "value",
                        "text",
                        map(&inserts, |i| i.0.identifier.value.as_str()),
                    )
                    .column(
                        "aggregate_type",
                        "text",
                        map(&inserts, |i| i.1.aggregate_type.as_str()),
                    )
                    .column(
                        "aggregate_id",
                        "text",
                        map(&inserts, |i| i.1.aggregate_id.as_str()),
                    )
                    .finish("n");
                qb.push(" WHERE ").push(guard).push(released);
            });
        }
    }
}

/// Restricts to the stream that holds the live identifier (the same table that enforces
/// uniqueness, so a search by identifier never disagrees with a read by identifier).
pub(crate) fn push_holder(
    qb: &mut QueryBuilder<'_, Postgres>,
    aggregate_type: &'static str,
    identifier: &Identifier,
) {
    qb.push(
        " AND aggregate_id IN (SELECT aggregate_id FROM identifier_claims WHERE aggregate_type = ",
    )
    .push_bind(aggregate_type)
    .push(" AND system = ")
    .push_bind(identifier.system.clone())
    .push(" AND value = ")
    .push_bind(identifier.value.clone())
    .push(")");
}

/// The stream of `aggregate_type` holding `identifier`, if any.
pub async fn holder(
    pool: &PgPool,
    aggregate_type: &str,
    identifier: &Identifier,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT aggregate_id FROM identifier_claims \
         WHERE aggregate_type = $1 AND system = $2 AND value = $3",
    )
    .bind(aggregate_type)
    .bind(&identifier.system)
    .bind(&identifier.value)
    .fetch_optional(pool)
    .await
}

/// Who holds each of `identifiers` now (type and stream), by `system|value`.
pub async fn holders(
    pool: &PgPool,
    identifiers: &[&Identifier],
) -> sqlx::Result<HashMap<String, (String, String)>> {
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT c.system, c.value, c.aggregate_type, c.aggregate_id FROM identifier_claims c \
         JOIN UNNEST($1::text[], $2::text[]) AS k(system, value) \
           ON c.system = k.system AND c.value = k.value",
    )
    .bind(map(identifiers, |i| i.system.as_str()))
    .bind(map(identifiers, |i| i.value.as_str()))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(system, value, aggregate_type, aggregate_id)| {
            (
                Identifier { system, value }.key(),
                (aggregate_type, aggregate_id),
            )
        })
        .collect())
}
