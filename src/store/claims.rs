//! Reading the identifier claims the append transaction writes (`identifier_claims`): which
//! stream holds a live `system|value`. The claims are as current as the events themselves, so a
//! lookup never answers from a lagging read model.

use openspp_aggregates::Identifier;
use sqlx::PgExecutor;

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
