//! Searching registrants by their households (OpenSPP's `Individual?group=…`,
//! `Individual?membership-role=…` and `Group?member=…`): a semi-join on the current members of
//! `group_members_view`, under the same consent rule as every search. The other side of the
//! membership is admitted only where the caller may see it too (a household's `member` list,
//! an individual itself), so a search never tells of a membership the caller could not read.

use sqlx::{Postgres, QueryBuilder};

use crate::consent::{push_visible_by, Visibility};

/// `Individual?group=&membership-role=`: individuals currently in `group` (a stream; `None`
/// for a group nobody holds the identifier of, which matches nothing) holding `role`.
#[derive(Debug, Clone, Default)]
pub struct InHousehold {
    pub group: Option<Option<String>>,
    /// A code of `urn:openspp:vocab:group-membership-type`.
    pub role: Option<String>,
}

impl InHousehold {
    pub fn is_empty(&self) -> bool {
        self.group.is_none() && self.role.is_none()
    }

    /// Appends ` AND EXISTS (…)` for `individual_view` rows, admitting only groups whose
    /// `member` list `visibility` shows.
    pub(crate) fn push(&self, qb: &mut QueryBuilder<'_, Postgres>, visibility: &Visibility) {
        if self.is_empty() {
            return;
        }
        qb.push(
            " AND EXISTS (SELECT 1 FROM group_members_view m \
             WHERE m.individual_id = individual_view.aggregate_id AND m.ended_date IS NULL",
        );
        match &self.group {
            Some(Some(group)) => {
                qb.push(" AND m.group_id = ").push_bind(group.clone());
            }
            Some(None) => {
                qb.push(" AND false");
            }
            None => {}
        }
        if let Some(role) = &self.role {
            qb.push(" AND ")
                .push_bind(role.clone())
                .push(" = ANY(m.roles)");
        }
        push_visible_by(qb, visibility, "group", "m.group_id", ["member".to_owned()]);
        qb.push(")");
    }
}

/// `Group?member=`: groups that have `individual` (a stream; `None` for an identifier nobody
/// holds) as a current member, admitting only an individual `visibility` lets the caller see.
pub(crate) fn push_has_member(
    qb: &mut QueryBuilder<'_, Postgres>,
    individual: &Option<String>,
    visibility: &Visibility,
) {
    let Some(individual) = individual else {
        qb.push(" AND false");
        return;
    };
    qb.push(
        " AND EXISTS (SELECT 1 FROM group_members_view m \
         WHERE m.group_id = group_view.aggregate_id AND m.ended_date IS NULL \
         AND m.individual_id = ",
    )
    .push_bind(individual.clone());
    push_visible_by(qb, visibility, "individual", "m.individual_id", Vec::new());
    qb.push(")");
}
