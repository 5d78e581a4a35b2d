//! Reading the identifier claims the append transaction writes (`identifier_claims`): which
//! stream holds a live `system|value`. The claims are as current as the events themselves, so a
//! lookup never answers from a lagging read model.

use openspp_aggregates::Identifier;
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
pub async fn resolve_registrant(
    pool: impl PgExecutor<'_>,
    aggregate_type: &str,
    identifier: &Identifier,
) -> sqlx::Result<Option<(String, Option<String>)>> {
    if let Some(stream) = super::transaction::created(aggregate_type, identifier).await {
        return Ok(Some((stream, None)));
    }
    let statement = match aggregate_type {
        "Individual" => INDIVIDUAL_KEYED,
        "Group" => GROUP_KEYED,
        _ => {
            let stream = resolve(pool, aggregate_type, identifier).await?;
            return Ok(stream.map(|stream| (stream, None)));
        }
    };
    sqlx::query_as(statement)
        .bind(aggregate_type)
        .bind(&identifier.system)
        .bind(&identifier.value)
        .fetch_optional(pool)
        .await
}

/// The claim and its stream's primary identifier, from the registrant's read model.
macro_rules! keyed_by_claim {
    ($view:literal) => {
        concat!(
            "SELECT c.aggregate_id, v.primary_identifier FROM identifier_claims c \
             LEFT JOIN ",
            $view,
            " v ON v.aggregate_id = c.aggregate_id \
             WHERE c.aggregate_type = $1 AND c.system = $2 AND c.value = $3"
        )
    };
}
const INDIVIDUAL_KEYED: &str = keyed_by_claim!("individual_view");
const GROUP_KEYED: &str = keyed_by_claim!("group_view");

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
