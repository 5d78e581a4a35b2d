//! The statistics counts a national registry runs (by gender, by program and gender), planned
//! by PostgreSQL over a registry written through the store's batch path (people, their
//! memberships of three programs, one in ten consenting to analysts): a count of memberships
//! by the registrant's gender reads the membership index alone, never a join of memberships to
//! registrants; a consent-bound count builds the set of the subjects its client's consents
//! admit once, from one read of the consents naming the client, never probing the consents of
//! each row it counts nor scanning every consent, and merges it with the memberships' index.
//! And the counts are the ones the join gives.

use libtest_mimic::Trial;
use openspp_projections::statistics::{self, CountQuery, Counted, Dimension, Target};

use crate::population;
use crate::support::sql_scalar;
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![trial("statistics_plans_read_one_index_at_scale", planned)]
}

/// People registered (each a member of one of three programs, each consenting to share their
/// record with `population::NGO`, one in ten to analysts).
const PEOPLE: usize = 30_000;

fn by_program_and_gender(counted: Counted) -> CountQuery {
    CountQuery {
        target: Target::Individuals,
        dimensions: vec![Dimension::Program, Dimension::Gender],
        programs: None,
        gender: None,
        membership_status: None,
        fields: vec!["gender".into()],
        counted,
        today: chrono::Utc::now().date_naive(),
    }
}

fn analysts() -> Counted {
    Counted::ConsentedForAnalytics {
        organization: population::ANALYSTS.into(),
        organization_type: "ngo".into(),
    }
}

/// Every `SubPlan` of `plan` is hashed (built once), none run per row.
fn no_subplan_per_row(plan: &str) -> bool {
    plan.lines()
        .filter(|line| line.contains("SubPlan"))
        .all(|line| line.contains("hashed SubPlan"))
}

async fn planned() {
    // Everyone also consents to another organisation: most consents name someone else.
    let (database, pool) = population::registry("openspp_statistics_plans", PEOPLE, Some(1)).await;
    population::add_analytics(database.url.clone(), PEOPLE).await;
    // As autovacuum leaves tables within a minute of a bulk load.
    sql_scalar(&database.url, "VACUUM ANALYZE");

    // Under a legal basis: one index-only scan of the memberships' counted facts.
    let everyone = by_program_and_gender(Counted::All);
    let plan = statistics::plan(&pool, &everyone).await.expect("explained");
    assert!(
        !plan.contains("individual_view"),
        "a count of memberships by gender joins the registrants:\n{plan}"
    );
    assert!(
        plan.contains("Index Only Scan using membership_view_counted"),
        "a count of memberships reads the counted index alone:\n{plan}"
    );

    // Bound by consent: the admitted set is built once, from one read of the consents naming
    // the client, and merged in byte order with the memberships' index in that order: no
    // probe per admitted subject (a nested loop), no hash probed by every membership.
    let bound = by_program_and_gender(analysts());
    let plan = statistics::plan(&pool, &bound).await.expect("explained");
    assert!(!plan.contains("individual_view"), "{plan}");
    assert!(
        !plan.contains("Seq Scan on consent_index"),
        "a count scans every consent:\n{plan}"
    );
    assert!(
        plan.contains("consent_index_recipients"),
        "the admitted subjects come from the consents naming the client:\n{plan}"
    );
    assert_eq!(
        plan.matches("Bitmap Heap Scan on consent_index").count(),
        1,
        "the membership's admission and the gender's come from one read of the consents:\n{plan}"
    );
    assert!(
        no_subplan_per_row(&plan),
        "a count probes the consents of each row:\n{plan}"
    );
    assert!(
        plan.contains("Index Only Scan using membership_view_admitted"),
        "the admitted subjects' memberships are read from the covering index:\n{plan}"
    );
    assert!(
        plan.contains("Merge Join") || plan.contains("Merge Semi Join"),
        "the sorted set is merged with the index:\n{plan}"
    );
    assert!(
        !plan.contains("Nested Loop"),
        "no probe per admitted subject:\n{plan}"
    );
    assert!(
        !plan.contains("HashAggregate"),
        "the set is grouped by subject as it is sorted for the merge, not hashed first:\n{plan}"
    );

    // The counts are the join's, cell by cell.
    let joined = sql_scalar(
        &database.url,
        "SELECT string_agg(p || ':' || g || ':' || n, ',' ORDER BY p, g) FROM ( \
             SELECT m.program_id AS p, coalesce(i.gender_code, 'unknown') AS g, count(*) AS n \
             FROM membership_view m JOIN individual_view i ON i.aggregate_id = m.beneficiary_id \
             GROUP BY 1, 2) t",
    );
    let cells = |counts: Vec<(Vec<String>, i64)>| {
        let mut cells: Vec<String> = counts
            .into_iter()
            .map(|(key, n)| format!("{}:{}:{n}", key[0], key[1]))
            .collect();
        cells.sort();
        cells.join(",")
    };
    let counted = statistics::count(&pool, &everyone).await.expect("counted");
    assert_eq!(counted.len(), 6, "three programs by two genders");
    assert_eq!(cells(counted), joined);
    let consented = statistics::count(&pool, &bound).await.expect("counted");
    let total: i64 = consented.iter().map(|(_, n)| n).sum();
    assert_eq!(total, (PEOPLE / 10) as i64, "one in ten consented");
    assert_eq!(consented.len(), 6, "of both genders in every program");
    pool.close().await;
    drop(database);
}
