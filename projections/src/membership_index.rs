//! Who currently belongs to which group, written inside the append statement of each member
//! event, because a household's consent covers exactly its current members: a write relying on
//! a household's consent for a member holds that member's row (`hold_consent`, migration 0013),
//! so a concurrent removal is ordered before or after it.

use std::collections::HashMap;

use sqlx::PgPool;

use crate::statement::{map, Statement, Unnest};

/// The joins and departures of one append, netted per (group, individual): a row is inserted or
/// deleted only if the append changes whether it should exist.
#[derive(Default)]
pub struct Memberships {
    /// Per `(group, individual)`: member before the append (if its first event was a
    /// departure), member after it (if its last event was a join).
    changes: HashMap<(String, String), (bool, bool)>,
}

impl Memberships {
    pub fn join(&mut self, group: &str, individual: &str) {
        self.change(group, individual, false).1 = true;
    }

    pub fn leave(&mut self, group: &str, individual: &str) {
        self.change(group, individual, true).1 = false;
    }

    fn change(&mut self, group: &str, individual: &str, before: bool) -> &mut (bool, bool) {
        self.changes
            .entry((group.to_owned(), individual.to_owned()))
            .or_insert((before, before))
    }

    fn rows(&self, before: bool, after: bool) -> Vec<(&str, &str)> {
        let mut rows: Vec<(&str, &str)> = self
            .changes
            .iter()
            .filter(|(_, change)| **change == (before, after))
            .map(|((group, individual), _)| (group.as_str(), individual.as_str()))
            .collect();
        rows.sort_unstable();
        rows
    }

    /// Adds the departures and the joins (never of the same row, netted as they are).
    pub fn push_into<'a>(&'a self, statement: &mut Statement<'a>) {
        let left = self.rows(true, false);
        if !left.is_empty() {
            statement.part("members_left", |qb, guard| {
                qb.push("DELETE FROM group_membership_index m USING ");
                Unnest::new(qb)
                    .column("group_id", "text", map(&left, |r| r.0))
                    .column("individual_id", "text", map(&left, |r| r.1))
                    .finish("l");
                qb.push(
                    " WHERE m.group_id = l.group_id AND m.individual_id = l.individual_id AND ",
                )
                .push(guard);
            });
        }
        let joined = self.rows(false, true);
        if !joined.is_empty() {
            statement.part("members_joined", |qb, guard| {
                qb.push(
                    "INSERT INTO group_membership_index (group_id, individual_id) \
                     SELECT group_id, individual_id FROM ",
                );
                Unnest::new(qb)
                    .column("group_id", "text", map(&joined, |r| r.0))
                    .column("individual_id", "text", map(&joined, |r| r.1))
                    .finish("j");
                qb.push(" WHERE ")
                    .push(guard)
                    .push(" ON CONFLICT DO NOTHING");
            });
        }
    }
}

/// The current members of a group (streams), by the membership index.
pub async fn current_members(pool: &PgPool, group_id: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT individual_id FROM group_membership_index WHERE group_id = $1 \
         ORDER BY individual_id",
    )
    .bind(group_id)
    .fetch_all(pool)
    .await
}
