//! A consent-bound count admits subjects as the set of those the client's consents admit
//! (`push_admitted_set`), a search probes each row's consents (`push_visible_for`): the same
//! condition on a consent, written once, in two shapes. This holds that they admit exactly the
//! same subjects, one admission or several at once (a membership and the registrant's fields,
//! as a count of memberships by gender asks), over a varied population of consents — withdrawn, expired, not yet in force,
//! withdrawn by one recipient for itself, naming other organisations, naming organisation
//! types, of groups (covering their current members), with scopes limited to some fields and
//! purposes — written to the index by its production writer.

mod support;

use chrono::{Duration, NaiveDate};
use openspp_aggregates::consent::{ConsentScope, ConsentStatus, RecipientMode};
use openspp_aggregates::{ConsentRecord, ConsentTerms};
use std::collections::BTreeSet;

use openspp_projections::begin::begin;
use openspp_projections::consent::{
    push_admitted_set, push_visible, push_visible_by, push_visible_for, Admission, Visibility,
    ANALYTICS,
};
use openspp_projections::membership_index::Memberships;
use openspp_projections::statement::Statement;
use sqlx::{PgPool, Postgres, QueryBuilder};
use support::TestDb;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 6, 15).unwrap()
}

const PEOPLE: usize = 60;
const GROUPS: usize = 7;

fn scope(resource_type: &str, purpose: &str, fields: Option<&[&str]>) -> ConsentScope {
    ConsentScope {
        resource_type: resource_type.into(),
        field_access: fields.map(|f| f.iter().map(|s| s.to_string()).collect()),
        purpose: purpose.into(),
    }
}

/// Consent `n`: every few consents another kind of subject, state and terms.
fn consent(n: usize) -> ConsentRecord {
    let (subject_type, subject) = if n.is_multiple_of(4) {
        ("Group", format!("g{}", n % GROUPS))
    } else {
        ("Individual", format!("s{}", (n * 7) % PEOPLE))
    };
    let status = match n % 9 {
        6 | 7 => ConsentStatus::Renewed,
        8 => ConsentStatus::Withdrawn,
        _ => ConsentStatus::Given,
    };
    let (effective, expiry) = [(-30, 30), (-30, -1), (1, 30), (-10, 0), (0, 400)][n % 5];
    let (mode, recipients, types): (RecipientMode, &[&str], &[&str]) = match n % 6 {
        0 | 3 => (RecipientMode::Specific, &["A"], &[]),
        1 => (RecipientMode::Specific, &["B", "A"], &[]),
        2 => (RecipientMode::Specific, &["C"], &[]),
        4 => (RecipientMode::Category, &[], &["ngo"]),
        _ => (RecipientMode::Category, &[], &["government", "academic"]),
    };
    let scopes = match n % 7 {
        0 => vec![scope("individual", "analytics", None)],
        1 => vec![scope("individual", "research", Some(&["name"]))],
        2 => vec![
            scope("program_membership", "analytics", None),
            scope("individual", "service_delivery", None),
        ],
        3 => vec![scope("all", "research", Some(&["gender"]))],
        4 => vec![scope("group", "analytics", None)],
        5 => vec![
            scope("individual", "analytics", Some(&["gender", "birthDate"])),
            scope("program_membership", "research", None),
        ],
        _ => vec![scope("program_membership", "service_delivery", None)],
    };
    let released: Vec<String> = if n % 11 == 5 {
        vec!["A".into()]
    } else {
        Vec::new()
    };
    let terms = ConsentTerms {
        subject_type: subject_type.into(),
        subject,
        recipient_mode: mode,
        recipients: recipients.iter().map(|s| s.to_string()).collect(),
        recipient_types: types.iter().map(|s| s.to_string()).collect(),
        scopes,
        legal_basis: "consent".into(),
        effective_date: today() + Duration::days(effective),
        expiry_date: today() + Duration::days(expiry),
        delegation_type: "self".into(),
        indicated_by: None,
    };
    ConsentRecord {
        consent_id: format!("c{n}"),
        status,
        terms,
        released,
    }
}

/// The subjects among `candidates` that `admit` lets through.
async fn admitted(
    pool: &PgPool,
    candidates: &[String],
    admit: impl FnOnce(&mut QueryBuilder<'_, Postgres>),
) -> Vec<String> {
    let mut qb = QueryBuilder::new("SELECT s.id FROM unnest(");
    qb.push_bind(candidates.to_vec())
        .push("::text[]) AS s(id) WHERE true");
    admit(&mut qb);
    qb.push(" ORDER BY s.id");
    qb.build_query_scalar().fetch_all(pool).await.unwrap()
}

#[tokio::test]
async fn a_count_admits_exactly_the_subjects_a_search_would() {
    let db = TestDb::create().await;
    let consents: Vec<ConsentRecord> = (0..400).map(consent).collect();
    support::index_consents(&db.pool, &consents).await;
    // Every third person belongs to a group.
    sqlx::query(
        "INSERT INTO group_membership_index (group_id, individual_id) \
         SELECT 'g' || (k % $2), 's' || k FROM generate_series(0, $1 - 1) AS k WHERE k % 3 = 0",
    )
    .bind(PEOPLE as i32)
    .bind(GROUPS as i32)
    .execute(&db.pool)
    .await
    .unwrap();
    let mut candidates: Vec<String> = (0..PEOPLE).map(|k| format!("s{k}")).collect();
    candidates.extend((0..GROUPS).map(|k| format!("g{k}")));
    candidates.push("nobody".into());

    let mut compared = 0;
    let mut ever_admitted = 0;
    let mut ever_admitted_both = 0;
    for (organization, organization_type) in [("A", "ngo"), ("B", "government"), ("D", "academic")]
    {
        let visibility = Visibility::Consented {
            organization: organization.into(),
            organization_type: organization_type.into(),
            today: today(),
        };
        for resource_type in ["individual", "group", "program_membership"] {
            for fields in [
                &[][..],
                &["gender"][..],
                &["birthDate", "gender"][..],
                &["name"][..],
            ] {
                let fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
                for purposes in [&ANALYTICS[..], &[][..]] {
                    let probe = |qb: &mut QueryBuilder<'_, Postgres>, resource_type, fields| {
                        push_visible_for(qb, &visibility, resource_type, "s.id", fields, purposes)
                    };
                    let probed = admitted(&db.pool, &candidates, |qb| {
                        probe(qb, resource_type, fields.clone())
                    })
                    .await;
                    let set = admitted(&db.pool, &candidates, |qb| {
                        push_admitted_set(
                            qb,
                            &visibility,
                            "s.id",
                            &Admission::each(resource_type, fields.clone()),
                            purposes,
                        )
                    })
                    .await;
                    assert_eq!(
                        set, probed,
                        "{organization}/{organization_type}, {resource_type}, {fields:?}, \
                         {purposes:?}"
                    );
                    assert!(probed.len() < candidates.len());
                    ever_admitted += probed.len();
                    compared += 1;
                    if resource_type == "program_membership" {
                        continue;
                    }
                    // Admitted to the membership and to the registrant's fields: what a count
                    // of memberships by the registrant's facts asks, in one set.
                    let probed_both = admitted(&db.pool, &candidates, |qb| {
                        probe(qb, "program_membership", Vec::new());
                        probe(qb, resource_type, fields.clone());
                    })
                    .await;
                    let mut both = vec![Admission {
                        resource_type: "program_membership",
                        field: None,
                    }];
                    both.extend(Admission::each(resource_type, fields.clone()));
                    let set_both = admitted(&db.pool, &candidates, |qb| {
                        push_admitted_set(qb, &visibility, "s.id", &both, purposes)
                    })
                    .await;
                    assert_eq!(
                        set_both, probed_both,
                        "{organization}/{organization_type}, membership and {resource_type}, \
                         {fields:?}, {purposes:?}"
                    );
                    ever_admitted_both += probed_both.len();
                }
            }
        }
    }
    assert_eq!(compared, 3 * 3 * 4 * 2);

    // The purposes both shapes read (`consent_index.purposes`, migration 0225) are those of
    // every scope of the consent's terms.
    for resource_type in ["individual", "group", "program_membership"] {
        for purposes in [&ANALYTICS[..], &["service_delivery"][..]] {
            let rows: Vec<(String, bool)> = sqlx::query_as(
                "SELECT consent_id, coalesce(purposes -> $1 ?| $2 OR purposes -> 'all' ?| $2, \
                     false) FROM consent_index",
            )
            .bind(resource_type)
            .bind(purposes)
            .fetch_all(&db.pool)
            .await
            .unwrap();
            assert_eq!(rows.len(), consents.len());
            for (id, sql) in rows {
                let terms = &consents.iter().find(|c| c.consent_id == id).unwrap().terms;
                let domain = terms.scopes.iter().any(|s| {
                    (s.resource_type == resource_type || s.resource_type == "all")
                        && purposes.contains(&s.purpose.as_str())
                });
                assert_eq!(sql, domain, "{id}: {resource_type}, {purposes:?}");
            }
        }
    }
    assert!(
        ever_admitted > 100,
        "the population admits someone, often: {ever_admitted}"
    );
    assert!(
        ever_admitted_both > 10,
        "someone is admitted to a membership and a record: {ever_admitted_both}"
    );
    db.drop().await;
}

/// The recipients `consents` could admit `subject` to (migration 0260's `consent_reach`), by
/// the domain's terms: those named by its own consents and its current groups', withdrawn
/// ones left out, `None` for none.
fn expected_reach(
    subject: &str,
    consents: &[ConsentRecord],
    members: &BTreeSet<(String, String)>,
) -> Option<Vec<String>> {
    let mut keys: Vec<String> = consents
        .iter()
        .filter(|c| c.status != ConsentStatus::Withdrawn)
        .filter(|c| {
            c.terms.subject == subject
                || members.contains(&(c.terms.subject.clone(), subject.to_owned()))
        })
        .flat_map(|c| match c.terms.recipient_mode {
            RecipientMode::Specific => c
                .terms
                .recipients
                .iter()
                .map(|r| format!("o:{r}"))
                .collect::<Vec<_>>(),
            RecipientMode::Category => c
                .terms
                .recipient_types
                .iter()
                .map(|t| format!("t:{t}"))
                .collect(),
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    (!keys.is_empty()).then_some(keys)
}

/// Every row's `consent_reach` is what its consents say, and a search (`push_visible`, which
/// tests the reach before it probes) finds exactly the rows the probe alone admits, for every
/// client, resource type and field set.
async fn reach_holds(
    pool: &PgPool,
    consents: &[ConsentRecord],
    members: &BTreeSet<(String, String)>,
) -> usize {
    let mut reached = 0;
    for table in ["individual_view", "group_view"] {
        let rows: Vec<(String, Option<Vec<String>>)> =
            sqlx::query_as(&format!("SELECT aggregate_id, consent_reach FROM {table}"))
                .fetch_all(pool)
                .await
                .unwrap();
        for (subject, reach) in rows {
            let reach = reach.map(|mut keys| {
                keys.sort_unstable();
                keys
            });
            assert_eq!(
                reach,
                expected_reach(&subject, consents, members),
                "{table} {subject}"
            );
            reached += usize::from(reach.is_some());
        }
    }
    for (organization, organization_type) in [("A", "ngo"), ("B", "government"), ("D", "academic")]
    {
        let visibility = Visibility::Consented {
            organization: organization.into(),
            organization_type: organization_type.into(),
            today: today(),
        };
        for (table, resource_type) in [("individual_view", "individual"), ("group_view", "group")] {
            for fields in [&[][..], &["gender"][..], &["birthDate", "name"][..]] {
                let fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
                let found = |reach: bool| {
                    let mut qb =
                        QueryBuilder::new(format!("SELECT aggregate_id FROM {table} WHERE true"));
                    if reach {
                        push_visible(&mut qb, &visibility, resource_type, fields.clone());
                    } else {
                        push_visible_by(
                            &mut qb,
                            &visibility,
                            resource_type,
                            "aggregate_id",
                            fields.clone(),
                        );
                    }
                    qb.push(" ORDER BY aggregate_id");
                    async move {
                        qb.build_query_scalar::<String>()
                            .fetch_all(pool)
                            .await
                            .unwrap()
                    }
                };
                assert_eq!(
                    found(true).await,
                    found(false).await,
                    "{organization}/{organization_type}, {table}, {fields:?}"
                );
            }
        }
    }
    reached
}

#[tokio::test]
async fn a_rows_consent_reach_follows_its_consents_and_groups() {
    let db = TestDb::create().await;
    let people: Vec<String> = (0..PEOPLE).map(|k| format!("s{k}")).collect();
    let groups: Vec<String> = (0..GROUPS).map(|k| format!("g{k}")).collect();
    view_rows(&db.pool, &people, &groups).await;
    let mut members = BTreeSet::new();
    let join = |members: &mut BTreeSet<(String, String)>, k: usize| {
        members.insert((format!("g{}", k % GROUPS), format!("s{k}")))
    };
    // Groups before consents: every third person joins one (no consent of the group yet).
    for k in (0..PEOPLE).filter(|k| k % 3 == 0) {
        join(&mut members, k);
    }
    write_members(&db.pool, &members, true).await;
    // Consents given: the reach of their subjects and of the members of their groups.
    let mut consents: Vec<ConsentRecord> = (0..400).map(consent).collect();
    support::index_consents(&db.pool, &consents).await;
    let first = reach_holds(&db.pool, &consents, &members).await;
    assert!(
        first > 20 && first < PEOPLE + GROUPS,
        "some rows reached, not all: {first}"
    );

    // Consents withdrawn; members leave groups with consents, others join them.
    for consent in consents.iter_mut().step_by(5) {
        consent.status = ConsentStatus::Withdrawn;
    }
    support::index_consents(&db.pool, &consents).await;
    let left: BTreeSet<(String, String)> = members
        .iter()
        .filter(|(_, s)| s[1..].parse::<usize>().unwrap() % 6 == 0)
        .cloned()
        .collect();
    write_members(&db.pool, &left, false).await;
    members.retain(|m| !left.contains(m));
    let mut joined = BTreeSet::new();
    for k in (0..PEOPLE).filter(|k| k % 3 == 1) {
        join(&mut joined, k);
    }
    write_members(&db.pool, &joined, true).await;
    members.extend(joined);
    let changed = reach_holds(&db.pool, &consents, &members).await;
    assert_ne!(changed, first, "the changes changed who is reached");

    // A rebuild sets every row at once, to the same values.
    sqlx::query("UPDATE individual_view SET consent_reach = NULL")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE group_view SET consent_reach = NULL")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("SELECT fill_consent_reach()")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(reach_holds(&db.pool, &consents, &members).await, changed);
    db.drop().await;
}

/// Adds (or removes) `members` in the membership index, as an append does.
async fn write_members(
    executor: impl sqlx::PgExecutor<'_>,
    members: &BTreeSet<(String, String)>,
    join: bool,
) {
    let mut index = Memberships::default();
    for (group, individual) in members {
        if join {
            index.join(group, individual);
        } else {
            index.leave(group, individual);
        }
    }
    let mut statement = Statement::new();
    index.push_into(&mut statement);
    support::run(executor, statement).await;
}

/// The consents covering no subject are found without a statement (a consent-bound page of
/// people in no household asks for its households' consents): a closed pool refuses one.
#[tokio::test]
async fn no_subject_is_covered_without_a_statement() {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect_lazy("postgres://postgres@127.0.0.1:5432/postgres")
        .unwrap();
    pool.close().await;
    let covering = openspp_projections::consent::covering(&pool, &[])
        .await
        .expect("no statement ran");
    assert!(covering.is_empty());
}

/// Gives consent `id` on `subject` to `organization` (a consent to specific recipients).
async fn give(executor: impl sqlx::PgExecutor<'_>, id: &str, subject: &str, organization: &str) {
    sqlx::query(
        "INSERT INTO consent_index (consent_id, subject_type, subject_id, status, \
             recipient_mode, recipients, recipient_types, resource_types, effective_date, \
             expiry_date, terms) \
         VALUES ($1, 'Individual', $2, 'given', 'specific', ARRAY[$3], '{}', '{all}', \
             '2020-01-01', '2030-01-01', '{}')",
    )
    .bind(id)
    .bind(subject)
    .bind(organization)
    .execute(executor)
    .await
    .unwrap();
}

async fn reach_of(pool: &PgPool, subject: &str) -> Option<Vec<String>> {
    sqlx::query_scalar("SELECT consent_reach FROM individual_view WHERE aggregate_id = $1")
        .bind(subject)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Runs `second` while `first` (a transaction) holds what it wrote, checks that `second`
/// waits for it, then commits `first` and waits for `second`.
async fn one_after_the_other(
    first: sqlx::Transaction<'static, Postgres>,
    second: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let second = tokio::spawn(second);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "the second writer waits for the first"
    );
    first.commit().await.unwrap();
    second.await.unwrap();
}

/// Writers at once: each waits for the rows the other holds and reads what it committed, so
/// no recipient is lost. Two consents given to one person at once each wrote the reach it saw
/// (the last lost the other's recipient); a person joining a household while the household's
/// consent was given was left out by both; a household's withdrawal and the removal of one of
/// its members locked the two rows in opposite orders.
#[tokio::test]
async fn concurrent_writers_leave_every_recipient_in_the_reach() {
    let db = TestDb::create().await;
    view_rows(&db.pool, &["x1".into(), "x2".into()], &["g1".into()]).await;

    // Two consents to one person.
    let mut first = begin(&db.pool).await.unwrap();
    give(&mut *first, "c1", "x1", "A").await;
    let pool = db.pool.clone();
    one_after_the_other(first, async move { give(&pool, "c2", "x1", "B").await }).await;
    assert_eq!(
        reach_of(&db.pool, "x1").await,
        Some(vec!["o:A".to_owned(), "o:B".to_owned()])
    );

    // A member joins (its append writes the group's row) while the household's consent is
    // given.
    let joins = "UPDATE group_view SET version = version + 1 WHERE aggregate_id = 'g1'";
    let mut first = begin(&db.pool).await.unwrap();
    sqlx::query(joins).execute(&mut *first).await.unwrap();
    let member = BTreeSet::from([("g1".to_owned(), "x2".to_owned())]);
    write_members(&mut *first, &member, true).await;
    let pool = db.pool.clone();
    one_after_the_other(first, async move {
        sqlx::query(
            "INSERT INTO consent_index (consent_id, subject_type, subject_id, status, \
                 recipient_mode, recipients, recipient_types, resource_types, \
                 effective_date, expiry_date, terms) \
             VALUES ('c3', 'Group', 'g1', 'given', 'category', '{}', ARRAY['ngo'], '{all}', \
                 '2020-01-01', '2030-01-01', '{}')",
        )
        .execute(&pool)
        .await
        .unwrap();
    })
    .await;
    assert_eq!(
        reach_of(&db.pool, "x2").await,
        Some(vec!["t:ngo".to_owned()])
    );

    // The member leaves while the household's consent is withdrawn: neither deadlocks.
    let mut first = begin(&db.pool).await.unwrap();
    sqlx::query(joins).execute(&mut *first).await.unwrap();
    write_members(&mut *first, &member, false).await;
    let pool = db.pool.clone();
    one_after_the_other(first, async move {
        sqlx::query("UPDATE consent_index SET status = 'withdrawn' WHERE consent_id = 'c3'")
            .execute(&pool)
            .await
            .unwrap();
    })
    .await;
    assert_eq!(reach_of(&db.pool, "x2").await, None);
    db.drop().await;
}

/// Rows of `individual_view` for `people` and of `group_view` for `groups`, with no consent
/// reaching them yet.
async fn view_rows(pool: &PgPool, people: &[String], groups: &[String]) {
    sqlx::query(
        "INSERT INTO individual_view (aggregate_id, version, state, name_search, \
             address_search, active, created_at, last_updated) \
         SELECT id, 1, '{}', '', '', true, now(), now() FROM unnest($1::text[]) id",
    )
    .bind(people)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO group_view (aggregate_id, version, state, name_search, group_type, \
             quantity, active, created_at, last_updated) \
         SELECT id, 1, '{}', '', 'household', 0, true, now(), now() FROM unnest($1::text[]) id",
    )
    .bind(groups)
    .execute(pool)
    .await
    .unwrap();
}
