//! Reading many subjects of one resource by identifier in one call (`$bulk/export`, CONTRACT
//! §10): the same rules as one read per identifier — scope, consent and field filtering per
//! subject — in a few statements for the whole list, and ONE access-log entry naming every
//! subject returned, and every one asked for and not found (marked so).

use std::collections::HashMap;

use openspp_aggregates::Identifier;
use openspp_projections::{identifier_claims, view};
use serde_json::Value;

use crate::api::params::Params;
use crate::api::reference::parse_identifier;
use crate::auth::Action;
use crate::error::ApiError;
use crate::extensions::Shown;
use crate::resource::answer::rendered;
use crate::resource::audit::Interaction;
use crate::resource::call::Call;
use crate::resource::grant::Grant;
use crate::resource::ops::{choose_elements, choose_extensions};
use crate::resource::traits::{reference_of, Resource, Snapshot};

/// The access a bulk export is logged as: a read (`R`) of many subjects.
pub const EXPORT: Interaction = Interaction::new("export", "R");

/// What became of one identifier asked for.
pub enum Exported {
    /// The resource as the caller may see it.
    Found(Value),
    /// Unknown, or not visible to the caller: one answer for both.
    NotFound,
    /// Not `system|value`.
    Invalid(String),
}

/// Each of `identifiers` (`system|value`), in order, as a read of it alone would answer;
/// `params` may hold `_elements` and `_extensions`, as for a read.
pub async fn export<R: Resource>(
    call: &Call,
    identifiers: &[String],
    mut params: Params,
) -> Result<Vec<Exported>, ApiError> {
    call.open(R::SCOPE, Action::Read, R::TYPE, EXPORT)?;
    choose_extensions::<R>(call, &mut params, Shown::None)?;
    choose_elements(call, &mut params)?;
    params.finish()?;
    let Some(table) = R::VIEW else {
        return Err(ApiError::unprocessable(
            "type",
            "cannot be exported in bulk",
        ));
    };
    let parsed: Vec<Result<Identifier, ApiError>> = identifiers
        .iter()
        .map(|id| parse_identifier(id, "identifiers"))
        .collect();
    let valid: Vec<&Identifier> = parsed.iter().filter_map(|p| p.as_ref().ok()).collect();
    let pool = &call.state.pool;
    let holders = identifier_claims::holders(pool, &valid).await?;
    let streams: Vec<String> = holders
        .values()
        .filter(|(kind, _)| kind == R::TYPE)
        .map(|(_, stream)| stream.clone())
        .collect();
    let rows: HashMap<String, Snapshot<R>> =
        view::rows_where::<R>(pool, table, "aggregate_id", &streams)
            .await?
            .into_iter()
            .map(|row| (row.aggregate_id.clone(), row))
            .collect();
    let snapshots: Vec<&Snapshot<R>> = rows.values().collect();
    let grants: HashMap<String, Grant> = R::grants(call, &snapshots).await?;
    let visible: Vec<&Snapshot<R>> = snapshots
        .iter()
        .copied()
        .filter(|s| grants.contains_key(&s.aggregate_id))
        .collect();
    let context = R::context(call, &visible).await?;
    let mut exported = Vec::with_capacity(identifiers.len());
    for (asked, parsed) in identifiers.iter().zip(&parsed) {
        let identifier = match parsed {
            Ok(identifier) => identifier,
            Err(error) => {
                exported.push(Exported::Invalid(error.diagnostics.clone()));
                continue;
            }
        };
        let found = holders
            .get(&identifier.key())
            .filter(|(kind, _)| kind == R::TYPE)
            .and_then(|(_, stream)| Some((rows.get(stream)?, grants.get(stream)?)));
        match found {
            Some((row, grant)) => {
                let reference = reference_of(&row.aggregate_id, &row.state)
                    .unwrap_or_else(|| format!("{}/{asked}", R::TYPE));
                call.audit.returned(
                    reference,
                    Some(&row.aggregate_id),
                    Some(&grant.disclosure()),
                );
                call.audit.mentioning(R::mentioned(&context, row, grant));
                exported.push(Exported::Found(rendered(call, &context, row, Some(grant))));
            }
            None => {
                // Asked for and not given is an access too: the auditor sees who asked for
                // whom, as for a lone lookup (the stream, if someone holds the identifier).
                let stream = holders
                    .get(&identifier.key())
                    .filter(|(kind, _)| kind == R::TYPE)
                    .map(|(_, stream)| stream.as_str());
                call.audit
                    .asked_not_found(format!("{}/{}", R::TYPE, identifier.key()), stream);
                exported.push(Exported::NotFound);
            }
        }
    }
    Ok(exported)
}
