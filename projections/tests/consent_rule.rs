//! "A consent is in force (for this recipient)" and "a consent covers this recipient and resource
//! type" are written once in SQL (`consent_in_force`, `consent_in_force_for`, `consent_covers`,
//! migrations 0013 and 0100) for the append's hold and every search's consent filter. This holds
//! them against the domain's own rule (`ConsentRecord::in_force`, `::in_force_for` and
//! `::covers`) over every combination of status, period, recipient mode, recipients, scopes and
//! recipients that withdrew for themselves, written to the index by its production writer.

mod support;

use std::collections::HashMap;

use chrono::{Duration, NaiveDate};
use openspp_aggregates::consent::{ConsentScope, ConsentStatus, RecipientMode};
use openspp_aggregates::{Actor, ConsentRecord, ConsentTerms};
use support::TestDb;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 6, 15).unwrap()
}

/// Every combination worth telling apart.
fn records() -> Vec<ConsentRecord> {
    let statuses = [
        ConsentStatus::Given,
        ConsentStatus::Renewed,
        ConsentStatus::Withdrawn,
    ];
    let offsets = [-10, 0, 10];
    let recipients: [(RecipientMode, &[&str], &[&str]); 5] = [
        (RecipientMode::Specific, &["A"], &[]),
        (RecipientMode::Specific, &["B", "A"], &[]),
        (RecipientMode::Specific, &["C"], &[]),
        (RecipientMode::Category, &[], &["ngo"]),
        (RecipientMode::Category, &[], &["government", "academic"]),
    ];
    let scopes: [&[&str]; 4] = [
        &["individual"],
        &["group"],
        &["all"],
        &["program_membership", "individual"],
    ];
    let released: [&[&str]; 3] = [&[], &["A"], &["B", "A"]];
    let mut records = Vec::new();
    for released in released {
        for status in statuses {
            for effective in offsets {
                for expiry in offsets {
                    for (mode, named, kinds) in &recipients {
                        for types in scopes {
                            records.push(ConsentRecord {
                                consent_id: format!("c{}", records.len()),
                                status,
                                terms: ConsentTerms {
                                    subject_type: "Individual".into(),
                                    subject: format!("s{}", records.len()),
                                    recipient_mode: *mode,
                                    recipients: named.iter().map(|s| s.to_string()).collect(),
                                    recipient_types: kinds.iter().map(|s| s.to_string()).collect(),
                                    scopes: types
                                        .iter()
                                        .map(|t| ConsentScope {
                                            resource_type: t.to_string(),
                                            field_access: None,
                                            purpose: "research".into(),
                                        })
                                        .collect(),
                                    legal_basis: "consent".into(),
                                    effective_date: today() + Duration::days(effective),
                                    expiry_date: today() + Duration::days(expiry),
                                    delegation_type: "self".into(),
                                    indicated_by: None,
                                },
                                released: released.iter().map(|s| s.to_string()).collect(),
                            });
                        }
                    }
                }
            }
        }
    }
    records
}

#[tokio::test]
async fn the_sql_consent_rule_is_the_domain_rule() {
    let db = TestDb::create().await;
    let records = records();
    support::index_consents(&db.pool, &records).await;

    let actors = [("A", "ngo"), ("B", "government"), ("D", "academic")];
    let mut compared = 0;
    for (organization, organization_type) in actors {
        let actor = Actor {
            organization: organization.into(),
            organization_type: organization_type.into(),
            legal_basis: None,
            field_filter: Vec::new(),
        };
        for resource_type in ["individual", "group", "program_membership"] {
            for day in [-11, -10, 0, 10, 11] {
                let day = today() + Duration::days(day);
                let rows: Vec<(String, bool, bool, bool)> = sqlx::query_as(
                    "SELECT c.consent_id, consent_in_force(c, $1), \
                            consent_in_force_for(c, $2, $1), \
                            consent_covers(c, $2, $3, $4, $1) \
                     FROM consent_index c",
                )
                .bind(day)
                .bind(organization)
                .bind(organization_type)
                .bind(resource_type)
                .fetch_all(&db.pool)
                .await
                .unwrap();
                let sql: HashMap<String, (bool, bool, bool)> = rows
                    .into_iter()
                    .map(|(id, in_force, for_it, covers)| (id, (in_force, for_it, covers)))
                    .collect();
                assert_eq!(sql.len(), records.len());
                for record in &records {
                    let domain = (
                        record.in_force(day),
                        record.in_force_for(organization, day),
                        record.covers(&actor, resource_type, day),
                    );
                    assert_eq!(
                        sql[&record.consent_id], domain,
                        "{record:?} for {organization}/{organization_type}, {resource_type}, {day}"
                    );
                    compared += 1;
                }
            }
        }
    }
    assert_eq!(compared, 3 * 540 * 3 * 3 * 5);
    db.drop().await;
}
