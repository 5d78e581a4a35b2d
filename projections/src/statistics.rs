//! Counts for the statistics engine (CONTRACT §7): registrants (individuals or groups), or their
//! program memberships, grouped by the chosen dimensions, over the read models' indexed columns.
//! Suppression of small cells is the caller's (it needs the whole table); this only counts, and
//! counts only subjects the caller may count.

use chrono::NaiveDate;
use sqlx::{PgPool, Postgres, QueryBuilder, Row, Transaction};

use crate::begin::{begin_with, end_read};
use crate::consent::{push_admitted_set, Admission, Visibility, ANALYTICS};

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
    /// The read model of the registrants counted, the consent resource type that covers
    /// them, and how a membership names their kind (`membership_view.beneficiary_type`).
    fn view(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Individuals => ("individual_view", "individual", "Individual"),
            Self::Groups => ("group_view", "group", "Group"),
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

    /// The dimension's value; the registrant's facts are read from the row `facts` (the
    /// registrant's own, or its membership's copy of them).
    fn push(self, qb: &mut QueryBuilder<'_, Postgres>, facts: &str, today: NaiveDate) {
        match self {
            Self::GroupType => {
                qb.push(format!("{facts}.group_type"));
            }
            Self::Gender => {
                qb.push(format!("coalesce({facts}.gender_code, 'unknown')"));
            }
            Self::AgeBand => {
                // Born after the day `n` years ago: younger than `n`.
                qb.push(format!(
                    "CASE WHEN {facts}.birth_date IS NULL THEN 'unknown'"
                ));
                for (years, band) in [(5, "0-4"), (18, "5-17"), (60, "18-59")] {
                    qb.push(format!(" WHEN {facts}.birth_date > "))
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

/// How a consent-bound count's transaction opens. PostgreSQL cannot see how many subjects the
/// client's consents admit (the set groups an append of two sources, which it guesses at 200,
/// then 50 after its `HAVING`), so left alone it plans the count for 50: one index probe per
/// admitted subject (100,000 of them at 1,000,000 people: 100,000 descents of a text index),
/// or a hash of the set probed by a scan of every row. Neither is ever the better way to read
/// a whole read model: the sorted set merged with the `*_admitted` index costs ~35% less CPU
/// than the hash and half the probes (psql EXPLAIN ANALYZE at 1,000,000). Without hash
/// aggregates the set is grouped by subject as it is sorted for the merge, where PostgreSQL
/// would hash it and sort it again (by gender at 1,000,000: 650-730 ms of CPU against
/// 810-850). The set's sort needs ~11 MB at 100,000 subjects: in the default 4 MB it spills
/// to disk.
const CONSENT_BOUND: &str = "BEGIN READ ONLY; SET LOCAL enable_nestloop = off; \
    SET LOCAL enable_hashjoin = off; SET LOCAL enable_hashagg = off; \
    SET LOCAL work_mem = '32MB'";

/// Opens the transaction `query`'s count runs in: with the planner's settings of a
/// consent-bound count (`CONSENT_BOUND`), or none.
async fn open(pool: &PgPool, query: &CountQuery) -> sqlx::Result<Transaction<'static, Postgres>> {
    let begin = match query.counted {
        Counted::All => "BEGIN READ ONLY",
        Counted::ConsentedForAnalytics { .. } => CONSENT_BOUND,
    };
    begin_with(pool, begin).await
}

/// Counts by the query's dimensions, in one statement.
pub async fn count(pool: &PgPool, query: &CountQuery) -> sqlx::Result<Vec<Cell>> {
    let mut tx = open(pool, query).await?;
    let rows = statement(query, "SELECT ")
        .build()
        .persistent(false)
        .fetch_all(&mut *tx)
        .await?;
    end_read(tx);
    rows.iter()
        .map(|row| {
            let key = (0..query.dimensions.len())
                .map(|index| row.try_get::<String, _>(index))
                .collect::<sqlx::Result<Vec<String>>>()?;
            Ok((key, row.try_get("n")?))
        })
        .collect()
}

/// How PostgreSQL plans `query`'s count (`EXPLAIN`), in the count's transaction.
pub async fn plan(pool: &PgPool, query: &CountQuery) -> sqlx::Result<String> {
    let mut tx = open(pool, query).await?;
    let lines: Vec<String> = statement(query, "EXPLAIN SELECT ")
        .build_query_scalar()
        .persistent(false)
        .fetch_all(&mut *tx)
        .await?;
    end_read(tx);
    Ok(lines.join("\n"))
}

/// The count's statement, after `start` (`SELECT `, or `EXPLAIN SELECT `).
///
/// A count of memberships reads `membership_view` alone: each row carries its beneficiary's
/// counted facts (gender, birth date, group type; migration 0225), so counting by program and
/// gender is one index-only scan of `membership_view_counted`, not a join of a million
/// memberships to a million registrants. A consent-bound count admits the subjects of the
/// consents that admit its client (`push_admitted_set`), a set built once, instead of
/// probing the consents of every row it reads.
fn statement<'a>(query: &'a CountQuery, start: &str) -> QueryBuilder<'a, Postgres> {
    let mut qb = QueryBuilder::new(start);
    let of_memberships = query.of_memberships();
    // The registrants' facts are on `i` (theirs) or `m` (a membership's copy).
    let facts = if of_memberships { "m" } else { "i" };
    for (index, dimension) in query.dimensions.iter().enumerate() {
        dimension.push(&mut qb, facts, query.today);
        qb.push(format!(" AS d{index}, "));
    }
    qb.push("count(*) AS n FROM ");
    let (view, resource_type, beneficiary_type) = query.target.view();
    if of_memberships {
        qb.push("membership_view m WHERE m.beneficiary_type = ")
            .push_bind(beneficiary_type);
    } else {
        qb.push(format!("{view} i WHERE true"));
    }
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
            qb.push(format!(" AND {facts}.gender_code = "))
                .push_bind(gender.clone());
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
        // The one consent condition of every search (`consent::push_admitted_set`),
        // narrowed to consents whose scope on what is counted names analytics or research. A
        // membership counts under a consent to use the membership (`program_membership`), not
        // under the registrant's record; a registrant's field the count reads (a dimension's,
        // a filter's) needs a consent to use that field of the record as well. One set
        // admits the subject to all of them.
        let visibility = Visibility::Consented {
            organization: organization.clone(),
            organization_type: organization_type.clone(),
            today: query.today,
        };
        let mut admissions = Vec::new();
        if of_memberships {
            admissions.push(Admission {
                resource_type: "program_membership",
                field: None,
            });
        }
        if !of_memberships || !query.fields.is_empty() {
            admissions.extend(Admission::each(resource_type, query.fields.iter().cloned()));
        }
        let subject = if of_memberships {
            "m.beneficiary_id"
        } else {
            "i.aggregate_id"
        };
        push_admitted_set(&mut qb, &visibility, subject, &admissions, &ANALYTICS);
    }
    if !query.dimensions.is_empty() {
        qb.push(" GROUP BY ");
        for (index, dimension) in query.dimensions.iter().enumerate() {
            if index > 0 {
                qb.push(", ");
            }
            // Gender by the column itself, not the shown `coalesce`, so that the rows of
            // `membership_view_counted` (or `individual_view_gender`) come in the order the
            // aggregate groups them by: no hash of a million keys.
            match dimension {
                Dimension::Gender => qb.push(format!("{facts}.gender_code")),
                _ => qb.push(format!("d{index}")),
            };
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

    /// A consent-bound count admits the subjects of the consents that admit its client, a set
    /// built once (`IN (WITH named AS …)`), not a probe of each counted row's consents
    /// (`EXISTS … OFFSET 0`, the searches' shape): a count reads every row. A count of
    /// memberships by gender needs the membership and the registrant's gender admitted: one
    /// set, from one read of the consents naming the client, with a flag for each.
    #[test]
    fn a_consent_bound_count_admits_one_set_of_consented_subjects() {
        let query = bound(Target::Individuals, vec![Dimension::Gender], &["gender"]);
        let sql = statement(&query, "SELECT ").into_sql();
        assert!(!sql.contains("OFFSET 0"), "{sql}");
        assert_eq!(
            sql.matches("m.beneficiary_id COLLATE \"C\" IN (WITH named AS")
                .count(),
            1,
            "one set, compared in byte order: {sql}"
        );
        assert_eq!(sql.matches("FROM consent_index c").count(), 1, "{sql}");
        assert_eq!(sql.matches("consent_names(c, ").count(), 1, "{sql}");
        assert_eq!(
            sql.matches("consent_scopes(c, ").count(),
            2,
            "the membership, and the registrant's field: {sql}"
        );
        assert!(
            sql.contains("HAVING bool_or(a.k0) AND bool_or(a.k1))"),
            "{sql}"
        );
    }

    /// A count of memberships by the registrant's facts reads the membership's copy of them:
    /// no join of the registrants' read model.
    #[test]
    fn a_membership_count_by_gender_reads_the_membership_row_alone() {
        let mut query = bound(
            Target::Individuals,
            vec![Dimension::Program, Dimension::Gender, Dimension::AgeBand],
            &["gender", "birthDate"],
        );
        query.counted = Counted::All;
        let sql = statement(&query, "SELECT ").into_sql();
        assert!(!sql.contains("individual_view"), "{sql}");
        assert!(!sql.contains("JOIN"), "{sql}");
        assert!(sql.contains("coalesce(m.gender_code, 'unknown')"), "{sql}");
        assert!(
            sql.contains("FROM membership_view m WHERE m.beneficiary_type = $"),
            "{sql}"
        );
    }

    #[test]
    fn a_membership_count_reading_no_registrant_field_asks_only_the_membership_s_consent() {
        let query = bound(Target::Individuals, vec![Dimension::MembershipStatus], &[]);
        let sql = statement(&query, "SELECT ").into_sql();
        assert_eq!(sql.matches("consent_scopes(c, ").count(), 1, "{sql}");
        assert!(sql.contains("HAVING bool_or(a.k0))"), "{sql}");
        assert!(!sql.contains("i.aggregate_id"), "{sql}");
    }

    /// A count of registrants admits them by their own id, for each field it reads.
    #[test]
    fn a_registrant_count_admits_each_field_it_reads() {
        let mut query = bound(
            Target::Individuals,
            vec![Dimension::Gender, Dimension::AgeBand],
            &["gender", "birthDate"],
        );
        query.programs = None;
        let sql = statement(&query, "SELECT ").into_sql();
        assert!(
            sql.contains("FROM individual_view i WHERE true AND i.aggregate_id COLLATE \"C\" IN"),
            "{sql}"
        );
        assert_eq!(sql.matches("consent_scopes(c, ").count(), 2, "{sql}");
        assert!(!sql.contains("membership_view"), "{sql}");
    }

    #[test]
    fn a_legal_basis_counts_without_a_consent_filter() {
        let mut query = bound(Target::Groups, vec![Dimension::GroupType], &["groupType"]);
        query.counted = Counted::All;
        let sql = statement(&query, "SELECT ").into_sql();
        assert!(!sql.contains("consent_index"), "{sql}");
    }
}
