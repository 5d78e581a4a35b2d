//! Counts for the statistics engine (CONTRACT §7): registrants (individuals or groups), or their
//! program memberships, grouped by the chosen dimensions, over the read models' indexed columns.
//! Suppression of small cells is the caller's (it needs the whole table); this only counts, and
//! counts only subjects the caller may count.

use chrono::NaiveDate;
use sqlx::{PgPool, Postgres, QueryBuilder, Row};

use crate::consent::{push_visible_for, Visibility, ANALYTICS};

/// What a count may be broken down by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dimension {
    /// ISO 5218 code (`unknown` where none is recorded).
    Gender,
    /// `0-4`, `5-17`, `18-59`, `60+` on the day of the count (`unknown` without a birth date).
    AgeBand,
    /// The program's stream (the caller shows its identifier); counts memberships.
    Program,
    /// `draft`, `enrolled`, …; counts memberships.
    MembershipStatus,
    /// A group's type (`household`, …); groups only.
    GroupType,
}

/// What is counted: individuals or groups (each, or their memberships).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Target {
    #[default]
    Individuals,
    Groups,
}

impl Target {
    /// The read model of the registrants counted, and the consent resource type that covers
    /// them.
    fn view(self) -> (&'static str, &'static str) {
        match self {
            Self::Individuals => ("individual_view", "individual"),
            Self::Groups => ("group_view", "group"),
        }
    }
}

impl Dimension {
    /// Whether the dimension belongs to memberships, so that the count is of memberships.
    pub fn of_membership(self) -> bool {
        matches!(self, Self::Program | Self::MembershipStatus)
    }

    /// Whether registrants of `target` have the dimension.
    pub fn applies_to(self, target: Target) -> bool {
        match self {
            Self::Gender | Self::AgeBand => target == Target::Individuals,
            Self::GroupType => target == Target::Groups,
            Self::Program | Self::MembershipStatus => true,
        }
    }

    fn push(self, qb: &mut QueryBuilder<'_, Postgres>, today: NaiveDate) {
        match self {
            Self::GroupType => {
                qb.push("i.group_type");
            }
            Self::Gender => {
                qb.push("coalesce(i.gender_code, 'unknown')");
            }
            Self::AgeBand => {
                // Born after the day `n` years ago: younger than `n`.
                qb.push("CASE WHEN i.birth_date IS NULL THEN 'unknown'");
                for (years, band) in [(5, "0-4"), (18, "5-17"), (60, "18-59")] {
                    qb.push(" WHEN i.birth_date > ")
                        .push_bind(today)
                        .push(format!("::date - interval '{years} years' THEN '{band}'"));
                }
                qb.push(" ELSE '60+' END");
            }
            Self::Program => {
                qb.push("m.program_id");
            }
            Self::MembershipStatus => {
                qb.push("m.status");
            }
        }
    }
}

/// Who is counting: everyone (a legal basis), or only the subjects whose consent covers the
/// caller for `analytics` or `research`.
#[derive(Clone, Debug)]
pub enum Counted {
    All,
    ConsentedForAnalytics {
        organization: String,
        organization_type: String,
    },
}

#[derive(Clone, Debug)]
pub struct CountQuery {
    /// Every dimension must apply to the target (`Dimension::applies_to`).
    pub target: Target,
    pub dimensions: Vec<Dimension>,
    /// Program streams to count within (a filter, or the caller's allowed programs); `None`:
    /// all. Counting within programs counts memberships.
    pub programs: Option<Vec<String>>,
    pub gender: Option<String>,
    pub membership_status: Option<String>,
    /// The registrants' fields the count reads (a dimension's, a filter's): a consent-bound
    /// caller counts only subjects whose consent shows every one of them, as a search admits
    /// only subjects whose consent shows the fields it filters on.
    pub fields: Vec<String>,
    pub counted: Counted,
    pub today: NaiveDate,
}

impl CountQuery {
    fn of_memberships(&self) -> bool {
        self.programs.is_some()
            || self.membership_status.is_some()
            || self.dimensions.iter().any(|d| d.of_membership())
    }
}

/// One cell: its values in `dimensions` order, and its count.
pub type Cell = (Vec<String>, i64);

/// Counts by the query's dimensions, in one statement.
pub async fn count(pool: &PgPool, query: &CountQuery) -> sqlx::Result<Vec<Cell>> {
    let rows = statement(query, "SELECT ")
        .build()
        .persistent(false)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            let key = (0..query.dimensions.len())
                .map(|index| row.try_get::<String, _>(index))
                .collect::<sqlx::Result<Vec<String>>>()?;
            Ok((key, row.try_get("n")?))
        })
        .collect()
}

/// How PostgreSQL plans `query`'s count (`EXPLAIN`).
pub async fn plan(pool: &PgPool, query: &CountQuery) -> sqlx::Result<String> {
    let lines: Vec<String> = statement(query, "EXPLAIN SELECT ")
        .build_query_scalar()
        .persistent(false)
        .fetch_all(pool)
        .await?;
    Ok(lines.join("\n"))
}

/// The count's statement, after `start` (`SELECT `, or `EXPLAIN SELECT `).
fn statement<'a>(query: &'a CountQuery, start: &str) -> QueryBuilder<'a, Postgres> {
    let mut qb = QueryBuilder::new(start);
    for (index, dimension) in query.dimensions.iter().enumerate() {
        dimension.push(&mut qb, query.today);
        qb.push(format!(" AS d{index}, "));
    }
    qb.push("count(*) AS n FROM ");
    // The registrants are `i`, whichever their kind.
    let (view, resource_type) = query.target.view();
    let of_memberships = query.of_memberships();
    if of_memberships {
        qb.push(format!(
            "membership_view m JOIN {view} i ON i.aggregate_id = m.beneficiary_id"
        ));
    } else {
        qb.push(format!("{view} i"));
    }
    qb.push(" WHERE true");
    if let Some(programs) = &query.programs {
        qb.push(" AND m.program_id = ANY(")
            .push_bind(programs.clone())
            .push(")");
    }
    if let Some(gender) = &query.gender {
        if query.target == Target::Groups {
            // Groups have no gender: none matches.
            qb.push(" AND false");
        } else {
            qb.push(" AND i.gender_code = ").push_bind(gender.clone());
        }
    }
    if let Some(status) = &query.membership_status {
        qb.push(" AND m.status = ").push_bind(status.clone());
    }
    if let Counted::ConsentedForAnalytics {
        organization,
        organization_type,
    } = &query.counted
    {
        // The one consent filter of every search (`consent::push_visible_for`), narrowed to
        // consents whose scope on what is counted names analytics or research. A membership
        // counts under a consent to use the membership (`program_membership`), not under the
        // registrant's record; a registrant's field the count reads (a dimension's, a
        // filter's) needs a consent to use that field of the record as well.
        let visibility = Visibility::Consented {
            organization: organization.clone(),
            organization_type: organization_type.clone(),
            today: query.today,
        };
        if of_memberships {
            push_visible_for(
                &mut qb,
                &visibility,
                "program_membership",
                "m.beneficiary_id",
                Vec::new(),
                &ANALYTICS,
            );
        }
        if !of_memberships || !query.fields.is_empty() {
            push_visible_for(
                &mut qb,
                &visibility,
                resource_type,
                "i.aggregate_id",
                query.fields.iter().cloned(),
                &ANALYTICS,
            );
        }
    }
    if !query.dimensions.is_empty() {
        qb.push(" GROUP BY ");
        for index in 0..query.dimensions.len() {
            if index > 0 {
                qb.push(", ");
            }
            qb.push(format!("d{index}"));
        }
    }
    qb
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(target: Target, dimensions: Vec<Dimension>, fields: &[&str]) -> CountQuery {
        CountQuery {
            target,
            dimensions,
            programs: Some(vec!["p".into()]),
            gender: None,
            membership_status: None,
            fields: fields.iter().map(|f| f.to_string()).collect(),
            counted: Counted::ConsentedForAnalytics {
                organization: "NGO".into(),
                organization_type: "ngo".into(),
            },
            today: NaiveDate::from_ymd_opt(2026, 6, 15).unwrap(),
        }
    }

    /// The statistics filter is the searches' probe (one `EXISTS … OFFSET 0` per subject
    /// column and field, issue 10's fast shape), not the set of every subject a client may
    /// count (`IN (SELECT … UNION …)`) it used to build per count.
    #[test]
    fn a_consent_bound_count_probes_each_row_s_consents() {
        let query = bound(Target::Individuals, vec![Dimension::Gender], &["gender"]);
        let sql = statement(&query, "SELECT ").into_sql();
        assert!(!sql.contains(" IN (SELECT"), "{sql}");
        assert!(!sql.contains("UNION"), "{sql}");
        assert!(
            sql.contains(
                "EXISTS (SELECT 1 FROM consent_index c WHERE c.subject_id = m.beneficiary_id"
            ),
            "the membership's own consent is probed: {sql}"
        );
        assert!(
            sql.contains(
                "EXISTS (SELECT 1 FROM consent_index c WHERE c.subject_id = i.aggregate_id"
            ),
            "the registrant's field is probed: {sql}"
        );
        assert_eq!(sql.matches("OFFSET 0").count(), 4, "{sql}");
    }

    #[test]
    fn a_membership_count_reading_no_registrant_field_asks_only_the_membership_s_consent() {
        let query = bound(Target::Individuals, vec![Dimension::MembershipStatus], &[]);
        let sql = statement(&query, "SELECT ").into_sql();
        assert!(sql.contains("c.subject_id = m.beneficiary_id"), "{sql}");
        assert!(!sql.contains("c.subject_id = i.aggregate_id"), "{sql}");
    }

    #[test]
    fn a_legal_basis_counts_without_a_consent_filter() {
        let mut query = bound(Target::Groups, vec![Dimension::GroupType], &["groupType"]);
        query.counted = Counted::All;
        let sql = statement(&query, "SELECT ").into_sql();
        assert!(!sql.contains("consent_index"), "{sql}");
    }
}
