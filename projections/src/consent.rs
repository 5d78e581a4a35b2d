//! The consent index: one row per consent, written from the consent's state inside the append
//! statement of each consent event (so a withdrawal is visible to the very next request of
//! every process), and read by the one consent filter every read surface goes through, and for
//! the consents behind a decision. "In force" and "covers" are SQL functions (migration 0013,
//! redefined by 0100 to exclude recipients that withdrew for themselves) shared with the
//! append's hold on a consent a write relies on.

use std::collections::HashMap;

use chrono::NaiveDate;
use cqrs_es::Aggregate;
use openspp_aggregates::consent::{named_extension, ConsentStatus, EXTENSION};
use openspp_aggregates::{Consent, ConsentRecord};
use sqlx::{PgExecutor, PgPool, Postgres, QueryBuilder, Row};

use crate::error::{ProjectionError, Undecodable};
use crate::events::Fold;
use crate::statement::{map, text_array_literal, Statement, Unnest};

/// The `consent_index` row of one consent. Its terms are frozen once given, but for the expiry
/// date a renewal moves; status and expiry follow the state.
pub(crate) struct Line {
    consent_id: String,
    subject_type: String,
    subject_id: String,
    status: &'static str,
    recipient_mode: &'static str,
    /// `text[]` columns as array literals (see `text_array_literal`).
    recipients: String,
    recipient_types: String,
    resource_types: String,
    effective_date: NaiveDate,
    expiry_date: NaiveDate,
    terms: String,
    /// The recipients that withdrew for themselves (`ConsentRecord::released`).
    released_recipients: String,
}

/// The row stream `aggregate_id` puts in the read model, as `fold` now holds it.
pub(crate) fn line(
    aggregate_id: &str,
    fold: &Fold<Consent>,
) -> Result<Option<Line>, ProjectionError> {
    let (Some(terms), Some(status)) = (&fold.state.terms, fold.state.status) else {
        // Not given (yet): nothing to index.
        return Ok(None);
    };
    let json = serde_json::to_string(terms).map_err(|e| Undecodable {
        aggregate_type: Consent::TYPE.to_owned(),
        sequence: fold.version as i64,
        reason: format!("terms cannot be stored: {e}"),
    })?;
    Ok(Some(Line {
        consent_id: aggregate_id.to_owned(),
        subject_type: terms.subject_type.clone(),
        subject_id: terms.subject.clone(),
        status: status.as_str(),
        recipient_mode: terms.recipient_mode.as_str(),
        recipients: text_array_literal(terms.recipients.iter().map(String::as_str)),
        recipient_types: text_array_literal(terms.recipient_types.iter().map(String::as_str)),
        resource_types: text_array_literal(terms.scopes.iter().map(|s| s.resource_type.as_str())),
        effective_date: terms.effective_date,
        expiry_date: terms.expiry_date,
        terms: json,
        released_recipients: text_array_literal(fold.state.released.iter().map(String::as_str)),
    }))
}

/// Writes `lines` (one per consent) as one upsert. A write relying on one of these consents
/// holds its row `FOR SHARE`: the update waits for that write, or that write sees it.
pub(crate) fn push_upsert<'a>(statement: &mut Statement<'a>, lines: &'a [Line]) {
    if lines.is_empty() {
        return;
    }
    statement.part("consent_rows", |qb, guard| {
        qb.push(
            "INSERT INTO consent_index (consent_id, subject_type, subject_id, status, \
                 recipient_mode, recipients, recipient_types, resource_types, effective_date, \
                 expiry_date, terms, released_recipients) \
             SELECT consent_id, subject_type, subject_id, status, recipient_mode, \
                 recipients::text[], recipient_types::text[], resource_types::text[], \
                 effective_date, expiry_date, terms::jsonb, released_recipients::text[] FROM ",
        );
        Unnest::new(qb)
            .column("consent_id", "text", map(lines, |l| l.consent_id.as_str()))
            .column(
                "subject_type",
                "text",
                map(lines, |l| l.subject_type.as_str()),
            )
            .column("subject_id", "text", map(lines, |l| l.subject_id.as_str()))
            .column("status", "text", map(lines, |l| l.status))
            .column("recipient_mode", "text", map(lines, |l| l.recipient_mode))
            .column("recipients", "text", map(lines, |l| l.recipients.as_str()))
            .column(
                "recipient_types",
                "text",
                map(lines, |l| l.recipient_types.as_str()),
            )
            .column(
                "resource_types",
                "text",
                map(lines, |l| l.resource_types.as_str()),
            )
            .column("effective_date", "date", map(lines, |l| l.effective_date))
            .column("expiry_date", "date", map(lines, |l| l.expiry_date))
            .column("terms", "text", map(lines, |l| l.terms.as_str()))
            .column(
                "released_recipients",
                "text",
                map(lines, |l| l.released_recipients.as_str()),
            )
            .finish("u");
        qb.push(" WHERE ").push(guard).push(
            " ON CONFLICT (consent_id) DO UPDATE SET status = EXCLUDED.status, \
                 expiry_date = EXCLUDED.expiry_date, terms = EXCLUDED.terms, \
                 released_recipients = EXCLUDED.released_recipients",
        );
    });
}

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

impl Visibility {
    /// Whether a consent must admit each row (`push_visible` probes them): the client is bound
    /// by consent.
    pub fn probes(&self) -> bool {
        self.client().is_some()
    }

    /// The client a consent must name, and the day it must be in force; `None` under a
    /// legal basis (everything is visible).
    fn client(&self) -> Option<Client<'_>> {
        match self {
            Self::All => None,
            Self::Consented {
                organization,
                organization_type,
                today,
            } => Some((organization, organization_type, *today)),
        }
    }
}

/// Restricts a view query to rows the client may see. The same rules as
/// `ConsentRecord::covers`, in SQL (`consent_covers`, migrations 0013 and 0100), so that totals and pages never count an unconsented row; a
/// group's consent covers its current members (read from the membership index, which is as
/// current as the consent index).
///
/// Written as a per-row probe of the subject's own consents (`consent_index_subject`) and of
/// its groups' (`group_membership_index_individual`), not as the set of every admitted subject:
/// that set is every consent naming the client, so building it (a scan and a hash of 100,000
/// consents at 1,000,000 people) cost 0.3–0.5 s per search however few rows the search's own
/// index found; a probe costs what the search finds (issue 10: an identifier search went from
/// 0.4 s to 0.2 ms, a month of birth dates from 0.42 s to 12–16 ms). `OFFSET 0` keeps PostgreSQL
/// from turning the probe back into that hash (it may not flatten or hash a sub-select with an
/// OFFSET), which it otherwise picks because it prices each probe as a random read from disk.
///
/// `fields` are the fields the query filters or sorts on: each narrows the set to subjects
/// with a consent that shows that field, so that a search can never probe a value its client
/// may not see (a count that changes with a hidden birth date would reveal it).
///
/// The rows of `individual_view` and `group_view` it is used on carry `consent_reach`
/// (migration 0260): the recipients any consent covering the row names. A row whose reach does
/// not name the client cannot pass the probe, so it is left out before it is probed, by a test
/// of the row (or of the index entry that carries the column); the probe decides for the rest.
pub fn push_visible(
    qb: &mut QueryBuilder<'_, Postgres>,
    visibility: &Visibility,
    resource_type: &'static str,
    fields: impl IntoIterator<Item = String>,
) {
    if let Some(client) = visibility.client() {
        push_reaches(qb, client);
    }
    push_visible_by(qb, visibility, resource_type, "aggregate_id", fields);
}

/// How a statement admits a consent-bound client's rows of `individual_view` or `group_view`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// By the consent rule (`push_visible`): every statement that reads rows.
    Probed,
    /// By the consent reach alone: every row the rule admits, and rows it would not (a
    /// consent out of force, without the scope or field asked). Only for an `EXPLAIN`, which
    /// reads no row: what a search expects to find among the newest rows (`Expected`) is
    /// then planned without the rule's two sub-selects, which PostgreSQL plans anew for each
    /// statement (a third of its time in a consent-bound search of a month of birth dates),
    /// and estimated from the reach's own statistics rather than with the three in four it
    /// assumes a sub-select passes.
    Reached,
}

impl Admit {
    /// Appends ` AND …`: the rows admitted, as `push_visible` (`Probed`) or by their reach.
    pub fn push(
        self,
        qb: &mut QueryBuilder<'_, Postgres>,
        visibility: &Visibility,
        resource_type: &'static str,
        fields: impl IntoIterator<Item = String>,
    ) {
        match (self, visibility.client()) {
            (Self::Probed, _) => push_visible(qb, visibility, resource_type, fields),
            (Self::Reached, Some(client)) => push_reaches(qb, client),
            (Self::Reached, None) => {}
        }
    }
}

/// ` AND consent_reach && …`: the row's `consent_reach` names the client, by its organisation
/// (a consent to specific recipients) or its organisation type (one to a category), as
/// migration 0260's `refresh_consent_reach` writes them.
fn push_reaches(qb: &mut QueryBuilder<'_, Postgres>, client: Client<'_>) {
    let (organization, organization_type, _) = client;
    qb.push(" AND consent_reach && ")
        .push_bind(vec![
            format!("o:{organization}"),
            format!("t:{organization_type}"),
        ])
        .push("::text[]");
}

/// As `push_visible`, for rows whose subject is in `subject_column` (a membership's
/// beneficiary, say).
pub fn push_visible_by(
    qb: &mut QueryBuilder<'_, Postgres>,
    visibility: &Visibility,
    resource_type: &'static str,
    subject_column: &'static str,
    fields: impl IntoIterator<Item = String>,
) {
    push_visible_for(qb, visibility, resource_type, subject_column, fields, &[]);
}

/// The purposes a statistics count needs a consent to name (CONTRACT §7).
pub const ANALYTICS: [&str; 2] = ["analytics", "research"];

/// As `push_visible_by`, admitting only consents with a scope on `resource_type` (or `all`)
/// for one of `purposes` (none given: any purpose). The statistics engine admits with the
/// same condition on a consent through `push_admitted_set` (with `ANALYTICS`), so that its
/// filter and every search's are one definition (`projections/tests/admission.rs` holds them
/// to the same subjects).
pub fn push_visible_for(
    qb: &mut QueryBuilder<'_, Postgres>,
    visibility: &Visibility,
    resource_type: &'static str,
    subject_column: &'static str,
    fields: impl IntoIterator<Item = String>,
    purposes: &'static [&'static str],
) {
    let Some(client) = visibility.client() else {
        return;
    };
    for admission in Admission::each(resource_type, fields) {
        push_probe(qb, client, subject_column, &admission, purposes);
    }
}

/// One thing a subject must be admitted to: its `resource_type`, and that type's `field` when
/// the statement reads one (each field read is admitted on its own: different consents may
/// show different fields).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admission {
    pub resource_type: &'static str,
    pub field: Option<String>,
}

impl Admission {
    /// One admission to `resource_type` per field in `fields` (or one without a field when
    /// there is none).
    pub fn each(
        resource_type: &'static str,
        fields: impl IntoIterator<Item = String>,
    ) -> Vec<Admission> {
        let mut fields: Vec<String> = fields.into_iter().collect();
        fields.sort_unstable();
        fields.dedup();
        if fields.is_empty() {
            return vec![Admission {
                resource_type,
                field: None,
            }];
        }
        fields
            .into_iter()
            .map(|field| Admission {
                resource_type,
                field: Some(field),
            })
            .collect()
    }
}

/// The client a consent must name, and the day it must be in force.
type Client<'v> = (&'v String, &'v String, NaiveDate);

/// Restricts a statement to rows whose `subject_column` is admitted to every one of
/// `admissions` (each for one of `purposes`, none given: any purpose), by the consents that
/// `push_visible_for` probes, written the other way round: `subject_column` must be in the set
/// of the subjects the client's consents admit (their own consents and those of their
/// groups), built once. For a statement that reads every row of a read model (a count):
/// probing the consents of each of 1,000,000 rows cost 2.4–2.9 s. A search, which reads a
/// page, probes.
///
/// The consents naming the client are read once (`consent_names`, by the recipients' GIN
/// indexes), each with a flag per admission; a subject is in the set when, over its own
/// consents and its groups', every flag is set by some consent. At 1,000,000 people with
/// 100,000 consents for the client, a count needing a membership and the registrant's gender
/// built two sets in two reads of those consents before (migration 0230).
///
/// The set comes out in byte order (`COLLATE "C"`) and `subject_column` is compared in it, so
/// that a count can merge the sorted set with an index of its rows in that order (the
/// `*_admitted` indexes of migration 0230) rather than probe a hash with every row.
pub fn push_admitted_set(
    qb: &mut QueryBuilder<'_, Postgres>,
    visibility: &Visibility,
    subject_column: &'static str,
    admissions: &[Admission],
    purposes: &'static [&'static str],
) {
    assert!(!admissions.is_empty(), "a subject is admitted to something");
    let Some(client) = visibility.client() else {
        return;
    };
    // The aliases (`named`, `a`, `n`, `c`, `vm`) are the set's own: `subject_column` is an
    // outer column that none of them may capture.
    let flags: Vec<String> = (0..admissions.len()).map(|k| format!("k{k}")).collect();
    qb.push(" AND ")
        .push(subject_column)
        .push(" COLLATE \"C\" IN (WITH named AS (SELECT c.subject_id AS subject");
    for (flag, admission) in flags.iter().zip(admissions) {
        qb.push(", consent_scopes(c, ")
            .push_bind(admission.resource_type)
            .push(")");
        push_shown(qb, admission, purposes);
        qb.push(format!(" AS {flag}"));
    }
    qb.push(" FROM consent_index c WHERE");
    push_names(qb, client);
    let listed = flags.join(", ");
    let carried: Vec<String> = flags.iter().map(|f| format!("n.{f}")).collect();
    qb.push(format!(
        ") SELECT a.subject COLLATE \"C\" FROM (SELECT subject, {listed} FROM named \
         UNION ALL SELECT vm.individual_id, {} FROM named n \
         JOIN group_membership_index vm ON vm.group_id = n.subject) a GROUP BY 1 HAVING ",
        carried.join(", ")
    ));
    let having: Vec<String> = flags.iter().map(|f| format!("bool_or(a.{f})")).collect();
    qb.push(having.join(" AND ")).push(")");
}

/// ` consent_names(c, …)`: the consent names the client and is in force for it.
fn push_names(qb: &mut QueryBuilder<'_, Postgres>, client: Client<'_>) {
    let (organization, organization_type, today) = client;
    qb.push(" consent_names(c, ")
        .push_bind(organization.clone())
        .push(", ")
        .push_bind(organization_type.clone())
        .push(", ")
        .push_bind(today)
        .push(")");
}

/// One admission of a row, probed: whether `subject_column` has a consent of its own, or of a
/// group it currently belongs to, that covers the client (`consent_covers`) and admits it.
fn push_probe(
    qb: &mut QueryBuilder<'_, Postgres>,
    client: Client<'_>,
    subject_column: &'static str,
    admission: &Admission,
    purposes: &'static [&'static str],
) {
    let (organization, organization_type, today) = client;
    let push_covers = |qb: &mut QueryBuilder<'_, Postgres>| {
        qb.push(" consent_covers(c, ")
            .push_bind(organization.clone())
            .push(", ")
            .push_bind(organization_type.clone())
            .push(", ")
            .push_bind(admission.resource_type)
            .push(", ")
            .push_bind(today)
            .push(")");
        push_shown(qb, admission, purposes);
    };
    // The aliases (`c`, `vm`) are the probe's own: `subject_column` is an outer column
    // (`aggregate_id`, `beneficiary_id`, a caller's `m.individual_id`) that neither table has
    // and no alias here may capture, or the probe would compare a row with itself. `OFFSET 0`
    // keeps PostgreSQL from turning the probe into the set (see `push_visible`).
    qb.push(" AND (EXISTS (SELECT 1 FROM consent_index c WHERE c.subject_id = ")
        .push(subject_column)
        .push(" AND");
    push_covers(qb);
    qb.push(
        " OFFSET 0) OR EXISTS (SELECT 1 FROM group_membership_index vm \
         JOIN consent_index c ON c.subject_id = vm.group_id WHERE vm.individual_id = ",
    )
    .push(subject_column)
    .push(" AND");
    push_covers(qb);
    qb.push(" OFFSET 0))");
}

/// ` AND …`: the consent `c`, with a scope on the admission's resource type, admits it for one
/// of `purposes` (if any) and shows its field (if any). Written once for both shapes.
fn push_shown(
    qb: &mut QueryBuilder<'_, Postgres>,
    admission: &Admission,
    purposes: &'static [&'static str],
) {
    let resource_type = admission.resource_type;
    if !purposes.is_empty() {
        // The purpose is the one of a scope on the resource type counted: research on
        // someone's group does not make their own record (or membership) countable.
        // `purposes` (migration 0225) lists every scope's purpose by resource type.
        qb.push(" AND (c.purposes -> ")
            .push_bind(resource_type)
            .push(" ?| ")
            .push_bind(purposes.to_vec())
            .push(" OR c.purposes -> 'all' ?| ")
            .push_bind(purposes.to_vec())
            .push(")");
    }
    if let Some(field) = &admission.field {
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
        released: row.try_get("released_recipients")?,
    })
}

/// Every consent that could cover each subject: its own, and (for individuals) those of the
/// groups it currently belongs to (by the membership index, kept in the append transaction).
/// One query for a whole page.
pub async fn covering(
    pool: impl PgExecutor<'_>,
    subject_ids: &[String],
) -> sqlx::Result<HashMap<String, Vec<ConsentRecord>>> {
    if subject_ids.is_empty() {
        // No statement for no subject: a consent-bound page of people in no household asked
        // for its (no) households' consents, a round trip of its own.
        return Ok(HashMap::new());
    }
    // Two index lookups (own consents, then the groups'), never a scan of all consents.
    let rows = sqlx::query(
        "SELECT subject, consent_id, status, terms, released_recipients FROM ( \
             SELECT c.subject_id AS subject, c.consent_id, c.status, c.terms, \
                 c.released_recipients \
             FROM consent_index c WHERE c.subject_id = ANY($1) \
             UNION ALL \
             SELECT m.individual_id, c.consent_id, c.status, c.terms, c.released_recipients \
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

pub use crate::membership_index::current_members;

/// One consent by its id.
pub async fn get(pool: &PgPool, consent_id: &str) -> sqlx::Result<Option<ConsentRecord>> {
    sqlx::query(
        "SELECT consent_id, status, terms, released_recipients FROM consent_index \
         WHERE consent_id = $1",
    )
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
        "SELECT consent_id, status, terms, released_recipients FROM consent_index \
         WHERE subject_id = $1 \
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
