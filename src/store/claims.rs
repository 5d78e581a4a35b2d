//! Reading the identifier claims the append transaction writes (`identifier_claims`): which
//! stream holds a live `system|value`. The claims are as current as the events themselves, so a
//! lookup never answers from a lagging read model.

use openspp_aggregates::Identifier;
use openspp_projections::lane::Lane;
use openspp_projections::together;
use openspp_projections::view::{self, IdentifierRead};
use serde::de::IgnoredAny;
use sqlx::PgExecutor;

/// Whether the committed claims are every claim there is: no `$batch` transaction is open,
/// whose earlier entries may have created or moved identifiers that stay its own until it
/// commits (`transaction::created`). A lookup that reads the claims inside a larger statement,
/// or trusts identifiers rendered from committed rows, is right only then.
pub fn committed_alone() -> bool {
    super::transaction::current().is_none()
}

/// The stream of `aggregate_type` holding a live identifier, if any. Inside an open
/// transaction, a stream it created holds its identifiers before they are claims.
pub async fn resolve(
    pool: impl PgExecutor<'_>,
    aggregate_type: &str,
    identifier: &Identifier,
) -> sqlx::Result<Option<String>> {
    if let Some(stream) = super::transaction::created(aggregate_type, identifier).await {
        return Ok(Some(stream));
    }
    sqlx::query_scalar(
        "SELECT aggregate_id FROM identifier_claims \
         WHERE aggregate_type = $1 AND system = $2 AND value = $3",
    )
    .bind(aggregate_type)
    .bind(&identifier.system)
    .bind(&identifier.value)
    .fetch_optional(pool)
    .await
}

/// `resolve`, for a registrant (`aggregate_type` `Individual` or `Group`), with the identifier
/// renderings reference it by (its read model's primary identifier) read in the same
/// statement: what a resource created about it renders without reading it again. The key is
/// `None` for a stream created in the open transaction, whose row is not written before it
/// commits. One changed earlier in the open transaction is read as it stood before it: inside
/// a transaction `$batch` no entry's body is answered, so nothing renders that key.
///
/// Asked for together with the lookups of its kind that arrive with it (`together.rs`): an
/// enrolment finds its beneficiary this way, and one statement a lookup was a round trip of
/// its own on both sides of loopback, the only read of an enrolment not shared (the program's
/// is): at 16 clients ~3,200 enrolments/s, one in five of PostgreSQL's statements. The row's
/// state is read too, and skipped unparsed (`IgnoredAny`): the shared statement reads whole rows.
pub async fn resolve_registrant(
    lane: &Lane,
    aggregate_type: &'static str,
    identifier: &Identifier,
) -> sqlx::Result<Option<(String, Option<String>)>> {
    if let Some(stream) = super::transaction::created(aggregate_type, identifier).await {
        return Ok(Some((stream, None)));
    }
    let table = match aggregate_type {
        "Individual" => "individual_view",
        "Group" => "group_view",
        _ => {
            let stream = resolve(lane, aggregate_type, identifier).await?;
            return Ok(stream.map(|stream| (stream, None)));
        }
    };
    let read = IdentifierRead {
        table,
        aggregate_type,
        beside: Some(PRIMARY_IDENTIFIER),
    };
    let found = together::by_identifier_with::<IgnoredAny>(
        lane,
        read,
        &identifier.system,
        &identifier.value,
    )
    .await?;
    found
        .map(|(stream, row)| {
            let key = row.map(|(_, key)| view::decode_beside(key)).transpose()?;
            Ok((stream, key.flatten()))
        })
        .transpose()
}

/// The registrant's primary identifier, beside its row (`NULL` when it has none).
const PRIMARY_IDENTIFIER: &str = "to_json(v.primary_identifier)";

/// The program an identifier names, its name alias matched whatever the case
/// (`urn:openspp:program|Cash-Transfer` finds `…|cash-transfer`).
pub async fn resolve_program(
    pool: impl PgExecutor<'_>,
    identifier: Identifier,
) -> sqlx::Result<Option<String>> {
    resolve(
        pool,
        "Program",
        &openspp_aggregates::program::lookup_key(identifier),
    )
    .await
}
