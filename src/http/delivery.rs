//! What the delivery resources (Cycle, Entitlement) share: how a body names a program, how a
//! search names one, and OpenSPP's defaults for unprefixed dates.

use axum::http::StatusCode;
use openspp_aggregates::program::NAME_ALIAS_SYSTEM;
use openspp_aggregates::Program;
use openspp_projections::delivery::ProgramFilter;
use openspp_projections::search::Comparator;

use crate::api::reference::parse_identifier;
use crate::api::schema::Reference;
use crate::error::ApiError;
use crate::resource::{Call, Resource};
use crate::store::claims::resolve_program;

/// The program a body names, as `Program/{system}|{value}` or OpenSPP's `Program/{name}`, and
/// its current state; one the caller may not use is no program (422).
pub async fn program_of(call: &Call, reference: &Reference) -> Result<(String, Program), ApiError> {
    let malformed = || {
        ApiError::unprocessable(
            "program",
            "must reference Program/{system}|{value} or Program/{name}",
        )
    };
    let text = reference
        .reference
        .strip_prefix("Program/")
        .filter(|rest| !rest.is_empty())
        .ok_or_else(malformed)?;
    let decoded = percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map_err(|_| malformed())?;
    let key = if decoded.contains('|') {
        decoded.into_owned()
    } else {
        format!("{NAME_ALIAS_SYSTEM}|{decoded}")
    };
    let no_program = || ApiError::unprocessable("program", "no such Program");
    let located = Program::locate(call, &key).await.map_err(|error| {
        if matches!(
            error.status,
            StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND
        ) {
            no_program()
        } else {
            error
        }
    })?;
    let state = match located.current {
        Some(current) => current.state,
        None => {
            Program::current(call, &located.stream)
                .await?
                .ok_or_else(no_program)?
                .state
        }
    };
    Ok((located.stream, state))
}

/// OpenSPP's `program` search parameter: a part of the program's name, whatever its case; a
/// `Program/{system}|{value}` (or bare `{system}|{value}`) names one program, and an unknown
/// one matches nothing.
pub async fn program_filter(call: &Call, text: &str) -> Result<ProgramFilter, ApiError> {
    let bare = text.strip_prefix("Program/").unwrap_or(text);
    if !bare.contains('|') {
        return Ok(ProgramFilter::NameContains(bare.to_owned()));
    }
    let identifier = parse_identifier(bare, "program")?;
    Ok(ProgramFilter::Stream(
        resolve_program(&call.state.pool, identifier)
            .await?
            .unwrap_or_default(),
    ))
}

/// OpenSPP's delivery searches read an unprefixed date as a bound (`startDate=2024-01-01`:
/// on or after), not as equality: `default` replaces the `eq` a missing prefix gives.
pub fn with_default<T>(filters: Vec<(Comparator, T)>, default: Comparator) -> Vec<(Comparator, T)> {
    filters
        .into_iter()
        .map(|(comparator, value)| match comparator {
            Comparator::Eq => (default, value),
            other => (other, value),
        })
        .collect()
}
