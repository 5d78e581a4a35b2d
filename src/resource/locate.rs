//! Finding a subject by external identifier, and what the caller may see of it.

use std::collections::HashMap;

use axum::http::StatusCode;
use openspp_aggregates::Access;
use openspp_projections::consent;

use crate::api::reference::parse_identifier;
use crate::error::ApiError;
use crate::resource::call::Call;
use crate::resource::grant::Grant;
use crate::resource::traits::{Resource, Snapshot};
use crate::resource::write::Write;
use crate::store::claims;

/// A subject the caller may see: its stream, what may be seen of it, the access to hand to the
/// aggregate if the caller changes it, and its current version when locating had to read it.
pub struct Located<R> {
    pub stream: String,
    pub grant: Grant,
    pub access: Access,
    /// The stream whose consent the grant comes from: the subject's own, or (for a membership)
    /// its beneficiary's.
    pub consent_subject: String,
    pub current: Option<Snapshot<R>>,
}

impl<R: Resource> Located<R> {
    /// A change of this subject: `command` is given the caller's access (the aggregate decides
    /// with it), and the write relies on the consent the grant came from.
    pub fn change(
        self,
        if_match: Option<u64>,
        command: impl FnOnce(Access) -> R::Command,
    ) -> Write<R> {
        let consent = self
            .grant
            .consent_id()
            .map(|consent| (consent, self.consent_subject));
        Write {
            stream: self.stream,
            if_match,
            command: command(self.access),
            consent,
            status: StatusCode::OK,
        }
    }
}

/// A data subject the caller may see: its stream, what it may see of it as the resource
/// type it asked for, and the access to hand to an aggregate.
pub struct Subject {
    pub stream: String,
    pub grant: Grant,
    pub access: Access,
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
    let pool = &call.state.pool;
    let stream = claims::resolve(pool, aggregate_type, &identifier).await?;
    let consents = if call.principal.require_consent {
        let probe = stream.clone().unwrap_or_default();
        consent::covering(pool, std::slice::from_ref(&probe))
            .await?
            .remove(&probe)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let access = call.principal.access(consents);
    let subject = format!("{aggregate_type}/{}", identifier.key());
    match (stream, Grant::from_access(&access, resource_type)) {
        (Some(stream), Some(grant)) => {
            call.audit
                .returned(subject, Some(&stream), Some(&grant.disclosure()));
            Ok(Subject {
                stream,
                grant,
                access,
            })
        }
        (stream, _) => {
            // Refusals are accesses too: the auditor sees who asked for whom.
            call.audit.not_found(subject, stream.as_deref());
            Err(ApiError::not_found(aggregate_type))
        }
    }
}

/// Finds an Individual or Group by any of its live identifiers (see [`find_subject`]).
pub async fn locate_registrant<R: Resource>(call: &Call, id: &str) -> Result<Located<R>, ApiError> {
    let subject = find_subject(call, R::TYPE, R::SCOPE, id).await?;
    Ok(Located {
        consent_subject: subject.stream.clone(),
        stream: subject.stream,
        grant: subject.grant,
        access: subject.access,
        current: None,
    })
}

/// The grants for a page of subjects (streams), in one query: what the caller may see of each
/// as `resource_type`. A subject absent from the answer is not visible to the caller.
pub async fn grants_for(
    call: &Call,
    resource_type: &'static str,
    subjects: &[String],
) -> Result<HashMap<String, Grant>, ApiError> {
    let principal = &call.principal;
    let consents = if principal.require_consent {
        consent::covering(&call.state.pool, subjects).await?
    } else {
        HashMap::new()
    };
    Ok(subjects
        .iter()
        .filter_map(|subject| {
            // A page may name one subject twice (two memberships of one beneficiary).
            let access = principal.access(consents.get(subject).cloned().unwrap_or_default());
            Grant::from_access(&access, resource_type).map(|g| (subject.clone(), g))
        })
        .collect())
}
