//! Counts for the statistics engine (CONTRACT §7): registrants (individuals or groups), or their
//! program memberships, grouped by the chosen dimensions, over the read models' indexed columns.
//! Suppression of small cells is the caller's (it needs the whole table); this only counts, and
//! counts only subjects the caller may count.

use chrono::NaiveDate;
use sqlx::{PgPool, Postgres, QueryBuilder, Row};

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
    let mut qb = QueryBuilder::new("SELECT ");
    for (index, dimension) in query.dimensions.iter().enumerate() {
        dimension.push(&mut qb, query.today);
        qb.push(format!(" AS d{index}, "));
    }
    qb.push("count(*) AS n FROM ");
    // The registrants are `i`, whichever their kind.
    let (view, resource_type) = query.target.view();
    if query.of_memberships() {
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
        // As `consent::push_visible`, narrowed to consents that name analytics or research.
        let in_force = |qb: &mut QueryBuilder<'_, Postgres>| {
            qb.push(" consent_covers(c, ")
                .push_bind(organization.clone())
                .push(", ")
                .push_bind(organization_type.clone())
                .push(format!(", '{resource_type}', "))
                .push_bind(query.today)
                .push(format!(
                    ") AND jsonb_path_exists(c.terms, '$.scopes[*] ? \
                     ((@.resource_type == \"{resource_type}\" || @.resource_type == \"all\") \
                     && (@.purpose == \"analytics\" || @.purpose == \"research\"))')"
                ));
            // The purpose is the one of the scope that covers the registrants counted: a
            // consent to research on someone's group does not make their own record countable.
            // `consent_field_access` (migration 0011), as `consent::push_admitted` reads it.
            for field in &query.fields {
                qb.push(format!(
                    " AND (c.field_access -> '{resource_type}' = 'null'::jsonb \
                     OR c.field_access -> '{resource_type}' ? "
                ))
                .push_bind(field.clone())
                .push(")");
            }
        };
        qb.push(" AND i.aggregate_id IN (SELECT c.subject_id FROM consent_index c WHERE");
        in_force(&mut qb);
        if query.target == Target::Individuals {
            // A household's consent covers its members.
            qb.push(
                " UNION SELECT gm.individual_id FROM group_membership_index gm \
                 JOIN consent_index c ON c.subject_id = gm.group_id WHERE",
            );
            in_force(&mut qb);
        }
        qb.push(")");
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
    let rows = qb.build().persistent(false).fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            let key = (0..query.dimensions.len())
                .map(|index| row.try_get::<String, _>(index))
                .collect::<sqlx::Result<Vec<String>>>()?;
            Ok((key, row.try_get("n")?))
        })
        .collect()
}
