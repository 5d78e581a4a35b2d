//! Finding a subject by external identifier, and what the caller may see of it.

use std::collections::HashMap;

use openspp_aggregates::{Access, Identifier};
use openspp_projections::view::IdentifierRead;
use openspp_projections::{consent, together};

use crate::api::params::Params;
use crate::api::reference::parse_identifier;
use crate::error::ApiError;
use crate::resource::call::Call;
use crate::resource::grant::Grant;
use crate::resource::traits::{Located, Resource, Snapshot};
use crate::store::{claims, transaction};

/// A data subject the caller may see: its stream, what it may see of it as the resource
/// type it asked for, and the access to hand to an aggregate.
pub struct Subject {
    pub stream: String,
    pub grant: Grant,
    pub access: Access,
    /// The identifier (`system|value`) renderings reference it by, when it was read with the
    /// stream (`find_subject`): a resource created about it renders it without another read.
    pub key: Option<String>,
}

impl Subject {
    /// What a resource about this subject in the program `program` renders them by (their
    /// identifiers, by stream), known from finding them: the program's `program_key`, and this
    /// subject's key when it was read with its stream. `None` when it was not (a subject
    /// created earlier in the same `$batch` has no row yet): rendering then reads them.
    pub fn references_in(
        &self,
        program: &str,
        program_key: Option<String>,
    ) -> Option<HashMap<String, String>> {
        let mut references = HashMap::from([(self.stream.clone(), self.key.clone()?)]);
        references.extend(program_key.map(|key| (program.to_owned(), key)));
        Some(references)
    }
}

/// Finds a data subject (an Individual or Group: `aggregate_type`) by any of its live
/// identifiers, as the consent scope `resource_type` lets the caller see it (a membership's
/// beneficiary is seen as `program_membership`). Unknown and unconsented give the same 404, and
/// do the same work: for a consent-bound caller the consent lookup runs even for an unknown
/// identifier. The access log names the subject either way.
pub async fn find_subject(
    call: &Call,
    aggregate_type: &'static str,
    resource_type: &'static str,
    id: &str,
) -> Result<Subject, ApiError> {
    let identifier = parse_identifier(id, "id")?;
    let found = claims::resolve_registrant(call.state.lane(), aggregate_type, &identifier).await?;
    let (stream, key) = found.unzip();
    let mut subject = judge(call, aggregate_type, resource_type, &identifier, stream).await?;
    subject.key = key.flatten();
    Ok(subject)
}

/// The caller's access to the data subject `stream`: the consents covering it, looked up only
/// for a consent-bound caller, and for an unknown subject (`""`) too, so that unknown and not
/// consented take the same work.
pub async fn access_to(call: &Call, stream: &str) -> Result<Access, ApiError> {
    let consents = if call.principal.require_consent {
        consent::covering(call.state.lane(), &[stream.to_owned()])
            .await?
            .remove(stream)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    Ok(call.principal.access(consents))
}

/// Finds a resource about one beneficiary in one program (a membership, an entitlement) by the
/// identifier it is claimed under: visible only as `grant_of` judges the caller's access to
/// its beneficiary (`R::consent_subject`), and only in the caller's allowed programs
/// (`program_of`). The consent lookup runs for an unknown identifier too, so that unknown and
/// not visible take the same work; `subject` is how the access log names it either way.
pub async fn locate_beneficiarys<R: Resource>(
    call: &Call,
    identifier: &Identifier,
    subject: String,
    program_of: fn(&R) -> &str,
    grant_of: impl FnOnce(&Access) -> Option<Grant>,
) -> Result<Located<R>, ApiError> {
    let (stream, row, context) = beneficiarys_row::<R>(call, identifier).await?;
    let beneficiary = row
        .as_ref()
        .map(|r| R::consent_subject(&r.aggregate_id, &r.state).to_owned())
        .unwrap_or_default();
    let access = access_to(call, &beneficiary).await?;
    match (row, grant_of(&access)) {
        (Some(row), Some(grant)) if call.principal.uses_program(program_of(&row.state)) => {
            call.audit
                .returned(subject, Some(&row.aggregate_id), Some(&grant.disclosure()));
            Ok(Located {
                stream: row.aggregate_id.clone(),
                consent_subject: beneficiary,
                grant,
                access,
                current: Some(row),
                context,
            })
        }
        _ => {
            call.audit.not_found(subject, stream.as_deref());
            Err(ApiError::not_found(R::TYPE))
        }
    }
}

/// The stream claimed under `identifier`, its current row, and (for a caller not bound by
/// consent) the row's context computed beside it (`Resource::CONTEXT_BESIDE`): the claim and
/// the row in one statement, on the lane, shared with the reads of the same kind that arrive
/// with it (`together.rs`). A stream created earlier in the open `$batch` transaction has no
/// row before the commit: its state is the one the transaction decided.
async fn beneficiarys_row<R: Resource>(
    call: &Call,
    identifier: &Identifier,
) -> Result<(Option<String>, Option<Snapshot<R>>, Option<R::Context>), ApiError> {
    let table = match (transaction::created(R::TYPE, identifier).await, R::VIEW) {
        (Some(stream), _) => {
            let row = transaction::decided::<R>(&stream)
                .await
                .map(|(state, version)| pending(stream.clone(), state, version));
            return Ok((Some(stream), row, None));
        }
        (None, Some(table)) => table,
        (None, None) => {
            let stream = claims::resolve(call.state.lane(), R::TYPE, identifier).await?;
            let row = match &stream {
                Some(stream) => R::current(call, stream).await?,
                None => None,
            };
            return Ok((stream, row, None));
        }
    };
    let beside = R::CONTEXT_BESIDE.filter(|_| !call.principal.require_consent);
    row_beside::<R>(call, table, identifier, beside).await
}

/// The stream of `R` claimed under `identifier`, its row in `table` (`None` while the read
/// model lags the claim) and, when `beside` is asked for, the context computed beside it: one
/// statement, on the lane (`lane.rs`: one round trip, no ping after it), shared with the reads
/// of the same kind that arrive with it (`together.rs`).
async fn row_beside<R: Resource>(
    call: &Call,
    table: &'static str,
    identifier: &Identifier,
    beside: Option<&'static str>,
) -> Result<(Option<String>, Option<Snapshot<R>>, Option<R::Context>), ApiError> {
    let read = IdentifierRead {
        table,
        aggregate_type: R::TYPE,
        beside,
    };
    let lane = call.state.lane();
    let found =
        together::by_identifier_with::<R>(lane, read, &identifier.system, &identifier.value)
            .await?;
    Ok(match found {
        None => (None, None, None),
        Some((stream, None)) => (Some(stream), None, None),
        Some((stream, Some((row, computed)))) => {
            let context = match beside {
                Some(_) => Some(R::context_beside(&stream, computed)?),
                None => None,
            };
            (Some(stream), Some(row), context)
        }
    })
}

/// What the caller may see of the subject `identifier` resolved to (`stream`, if any).
async fn judge(
    call: &Call,
    aggregate_type: &'static str,
    resource_type: &'static str,
    identifier: &Identifier,
    stream: Option<String>,
) -> Result<Subject, ApiError> {
    let access = access_to(call, stream.as_deref().unwrap_or_default()).await?;
    let subject = format!("{aggregate_type}/{}", identifier.key());
    match (stream, Grant::from_access(&access, resource_type)) {
        (Some(stream), Some(grant)) => {
            call.audit
                .returned(subject, Some(&stream), Some(&grant.disclosure()));
            Ok(Subject {
                stream,
                grant,
                access,
                key: None,
            })
        }
        (stream, _) => {
            // Refusals are accesses too: the auditor sees who asked for whom.
            call.audit.not_found(subject, stream.as_deref());
            Err(ApiError::not_found(aggregate_type))
        }
    }
}

/// A search parameter naming another registrant (`group=Group/{system}|{value}`, or the bare
/// `{system}|{value}`): `None` when not given; else the registrant's stream, or `Some(None)`
/// for an identifier nobody holds, which matches nothing. Whether the caller may see that
/// registrant is decided by the search itself, in the same statement, under its consent
/// rules: the answer is then the same as for an unknown one.
pub async fn referenced(
    call: &Call,
    params: &mut Params,
    name: &str,
    aggregate_type: &'static str,
) -> Result<Option<Option<String>>, ApiError> {
    let Some(text) = params.one(name)? else {
        return Ok(None);
    };
    let bare = text
        .strip_prefix(aggregate_type)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(&text);
    let identifier = parse_identifier(bare, name)?;
    Ok(Some(
        claims::resolve(call.state.lane(), aggregate_type, &identifier).await?,
    ))
}

/// Finds an Individual or Group by any of its live identifiers (see [`find_subject`]).
///
/// For a caller under a legal basis (no consent to look up) the subject's current row comes
/// with its stream, in the same round trip, so that a read needs no second one.
pub async fn locate_registrant<R: Resource>(call: &Call, id: &str) -> Result<Located<R>, ApiError> {
    locate_registrant_beside(call, id, None).await
}

/// `locate_registrant` for a request that renders the subject (a read, a replacement, a merge
/// patch): a caller not bound by consent gets the row's context (`Resource::CONTEXT_BESIDE`)
/// from the same statement, and a change's answer is rendered with it, not read again after
/// the commit. Other writes do not read it.
pub async fn locate_registrant_to_render<R: Resource>(
    call: &Call,
    id: &str,
) -> Result<Located<R>, ApiError> {
    locate_registrant_beside(call, id, R::CONTEXT_BESIDE).await
}

async fn locate_registrant_beside<R: Resource>(
    call: &Call,
    id: &str,
    beside: Option<&'static str>,
) -> Result<Located<R>, ApiError> {
    let identifier = parse_identifier(id, "id")?;
    let lane = call.state.lane();
    let pending = transaction::created(R::TYPE, &identifier).await;
    let (stream, current, context) = match R::VIEW {
        // Created earlier in the open transaction: not in any read model before the commit.
        _ if pending.is_some() => (pending, None, None),
        // A caller not bound by consent sees the row and what it links to as they are: the
        // claim, the row and its context in one statement.
        Some(table) if !call.principal.require_consent => {
            row_beside::<R>(call, table, &identifier, beside).await?
        }
        _ => (
            claims::resolve(lane, R::TYPE, &identifier).await?,
            None,
            None,
        ),
    };
    let subject = judge(call, R::TYPE, R::SCOPE, &identifier, stream).await?;
    Ok(Located {
        consent_subject: subject.stream.clone(),
        stream: subject.stream,
        grant: subject.grant,
        access: subject.access,
        current,
        context,
    })
}

/// The key an id names under `system`: `{system}|{key}` names it too.
pub fn key_in<'a>(id: &'a str, system: &str) -> &'a str {
    id.strip_prefix(system)
        .and_then(|rest| rest.strip_prefix('|'))
        .unwrap_or(id)
}

/// A resource no data subject's consent governs (a program, a product, a service point), as
/// found by its lookup: located, or 404; the access log names `subject` either way.
pub fn not_personal<R: Resource>(
    call: &Call,
    subject: String,
    found: Option<(String, Option<Snapshot<R>>)>,
) -> Result<Located<R>, ApiError> {
    let Some((stream, current)) = found else {
        call.audit.not_found(subject, None);
        return Err(ApiError::not_found(R::TYPE));
    };
    call.audit.returned(subject, Some(&stream), None);
    Ok(Located {
        consent_subject: stream.clone(),
        stream,
        grant: Grant::not_personal(R::SCOPE),
        access: call.principal.access(Vec::new()),
        current,
        context: None,
    })
}

/// A resource no data subject's consent governs, by the identifier it is claimed under, with
/// its current row in one round trip (`None` while the read model lags the claim). One created
/// earlier in the open `$batch` transaction is found too, though no read model has it before
/// the commit.
pub async fn by_identifier<R: Resource>(
    call: &Call,
    key: &Identifier,
) -> Result<Option<(String, Option<Snapshot<R>>)>, ApiError> {
    if let Some((stream, state, version)) = transaction::created_pending::<R>(key).await {
        return Ok(Some((
            stream.clone(),
            Some(pending(stream, state, version)),
        )));
    }
    let lane = call.state.lane();
    Ok(match R::VIEW {
        Some(table) => {
            together::by_identifier::<R>(lane, table, R::TYPE, &key.system, &key.value).await?
        }
        None => claims::resolve(lane, R::TYPE, key)
            .await?
            .map(|stream| (stream, None)),
    })
}

/// `state` as the open `$batch` transaction has decided it, at `version`: not committed yet.
fn pending<R>(stream: String, state: R, version: u64) -> Snapshot<R> {
    Snapshot {
        aggregate_id: stream,
        version: version as i64,
        state,
        last_updated: chrono::Utc::now(),
        source: None,
    }
}
