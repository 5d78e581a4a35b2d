//! Reading the consent index (kept in step by the event store, inside its transactions): the
//! one consent filter every read surface goes through, and the consents behind a decision.

use std::collections::HashMap;

use chrono::NaiveDate;
use openspp_aggregates::consent::{named_extension, ConsentStatus, EXTENSION};
use openspp_aggregates::ConsentRecord;
use sqlx::{PgPool, Postgres, QueryBuilder, Row};

/// Who may see what: everything (a client acting under a legal basis), or only subjects whose
/// consent names the client's organisation or organisation type.
#[derive(Debug, Clone)]
pub enum Visibility {
    All,
    Consented {
        organization: String,
        organization_type: String,
        today: NaiveDate,
    },
}

/// Restricts a view query to rows the client may see. The same rules as
/// `ConsentRecord::covers`, in SQL, so that totals and pages never count an unconsented row; a
/// group's consent covers its current members (read from the membership index, which is as
/// current as the consent index). Written as a set of admitted subjects (one hashed semi-join)
/// rather than a per-row correlated check.
///
/// `fields` are the fields the query filters or sorts on: each narrows the set to subjects
/// with a consent that shows that field, so that a search can never probe a value its client
/// may not see (a count that changes with a hidden birth date would reveal it).
pub fn push_visible(
    qb: &mut QueryBuilder<'_, Postgres>,
    visibility: &Visibility,
    resource_type: &'static str,
    fields: impl IntoIterator<Item = String>,
) {
    let mut fields: Vec<String> = fields.into_iter().collect();
    fields.sort_unstable();
    fields.dedup();
    if fields.is_empty() {
        push_admitted(qb, visibility, resource_type, "aggregate_id", None);
    }
    for field in fields {
        push_admitted(qb, visibility, resource_type, "aggregate_id", Some(field));
    }
}

/// As `push_visible`, for rows whose subject is in `subject_column` (a membership's
/// beneficiary, say).
pub fn push_visible_by(
    qb: &mut QueryBuilder<'_, Postgres>,
    visibility: &Visibility,
    resource_type: &'static str,
    subject_column: &'static str,
) {
    push_admitted(qb, visibility, resource_type, subject_column, None);
}

/// One semi-join: `subject_column` among the subjects whose consents admit the client to
/// `resource_type` (and show `field`, if given).
fn push_admitted(
    qb: &mut QueryBuilder<'_, Postgres>,
    visibility: &Visibility,
    resource_type: &'static str,
    subject_column: &'static str,
    field: Option<String>,
) {
    let Visibility::Consented {
        organization,
        organization_type,
        today,
    } = visibility
    else {
        return;
    };
    let push_in_force = |qb: &mut QueryBuilder<'_, Postgres>| {
        qb.push(" c.status IN ('given', 'renewed') AND c.effective_date <= ")
            .push_bind(*today)
            .push(" AND c.expiry_date >= ")
            .push_bind(*today)
            .push(" AND ((c.recipient_mode = 'specific' AND c.recipients @> ARRAY[")
            .push_bind(organization.clone())
            .push("]::text[]) OR (c.recipient_mode = 'category' AND c.recipient_types @> ARRAY[")
            .push_bind(organization_type.clone())
            .push("]::text[])) AND (")
            .push_bind(resource_type)
            .push(" = ANY(c.resource_types) OR 'all' = ANY(c.resource_types))");
        if let Some(field) = &field {
            // `consent_field_access` (migration 0011) follows `ConsentRecord::scope_for`.
            qb.push(" AND (c.field_access -> ")
                .push_bind(resource_type)
                .push(" = 'null'::jsonb OR c.field_access -> ")
                .push_bind(resource_type);
            if named_extension(field).is_some() {
                // One extension's data is shown by its own name or by `extension` (`shows`).
                qb.push(" ?| ")
                    .push_bind(vec![field.clone(), EXTENSION.to_owned()]);
            } else {
                qb.push(" ? ").push_bind(field.clone());
            }
            qb.push(")");
        }
    };
    qb.push(" AND ")
        .push(subject_column)
        .push(" IN (SELECT c.subject_id FROM consent_index c WHERE");
    push_in_force(qb);
    qb.push(
        " UNION SELECT m.individual_id FROM group_membership_index m \
         JOIN consent_index c ON c.subject_id = m.group_id WHERE",
    );
    push_in_force(qb);
    qb.push(")");
}

fn status(text: &str) -> ConsentStatus {
    match text {
        "given" => ConsentStatus::Given,
        "renewed" => ConsentStatus::Renewed,
        _ => ConsentStatus::Withdrawn,
    }
}

fn record(row: &sqlx::postgres::PgRow) -> sqlx::Result<ConsentRecord> {
    let terms: serde_json::Value = row.try_get("terms")?;
    Ok(ConsentRecord {
        consent_id: row.try_get("consent_id")?,
        status: status(row.try_get("status")?),
        terms: serde_json::from_value(terms).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
    })
}

/// Every consent that could cover each subject: its own, and (for individuals) those of the
/// groups it currently belongs to (by the membership index, kept in the append transaction).
/// One query for a whole page.
pub async fn covering(
    pool: &PgPool,
    subject_ids: &[String],
) -> sqlx::Result<HashMap<String, Vec<ConsentRecord>>> {
    // Two index lookups (own consents, then the groups'), never a scan of all consents.
    let rows = sqlx::query(
        "SELECT subject, consent_id, status, terms FROM ( \
             SELECT c.subject_id AS subject, c.consent_id, c.status, c.terms \
             FROM consent_index c WHERE c.subject_id = ANY($1) \
             UNION ALL \
             SELECT m.individual_id, c.consent_id, c.status, c.terms \
             FROM group_membership_index m JOIN consent_index c ON c.subject_id = m.group_id \
             WHERE m.individual_id = ANY($1) \
         ) covering ORDER BY consent_id",
    )
    .bind(subject_ids)
    .fetch_all(pool)
    .await?;
    let mut covering: HashMap<String, Vec<ConsentRecord>> = HashMap::new();
    for row in &rows {
        covering
            .entry(row.try_get("subject")?)
            .or_default()
            .push(record(row)?);
    }
    Ok(covering)
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

/// One consent by its id.
pub async fn get(pool: &PgPool, consent_id: &str) -> sqlx::Result<Option<ConsentRecord>> {
    sqlx::query("SELECT consent_id, status, terms FROM consent_index WHERE consent_id = $1")
        .bind(consent_id)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(record)
        .transpose()
}

/// The consents recorded for one subject, newest first.
pub async fn for_subject(pool: &PgPool, subject_id: &str) -> sqlx::Result<Vec<ConsentRecord>> {
    let rows = sqlx::query(
        "SELECT consent_id, status, terms FROM consent_index WHERE subject_id = $1 \
         ORDER BY effective_date DESC, consent_id",
    )
    .bind(subject_id)
    .fetch_all(pool)
    .await?;
    rows.iter().map(record).collect()
}

/// The identifier (`system|value`) by which a consent's subject is referenced.
pub async fn subject_identifier(
    pool: &PgPool,
    subject_type: &str,
    subject_id: &str,
) -> sqlx::Result<Option<String>> {
    let table = match subject_type {
        "Group" => "group_view",
        _ => "individual_view",
    };
    sqlx::query_scalar(&format!(
        "SELECT primary_identifier FROM {table} WHERE aggregate_id = $1"
    ))
    .bind(subject_id)
    .fetch_optional(pool)
    .await
    .map(Option::flatten)
}
