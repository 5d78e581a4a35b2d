//! What a body names: another resource it refers to, and the beneficiary a membership or an
//! entitlement is created for. Whatever the caller may not see is as unknown as what does not
//! exist: a 422 naming the field.

use axum::http::StatusCode;
use openspp_aggregates::{Access, Identifier, TargetType};

use crate::api::membership::split_beneficiary;
use crate::api::preconditions::IfMatch;
use crate::api::reference::parse_reference;
use crate::error::ApiError;
use crate::resource::answer::Answer;
use crate::resource::call::Call;
use crate::resource::locate::{find_subject, Subject};
use crate::resource::traits::{Located, Resource, Write};
use crate::resource::write::commit;
use crate::store::claims;

/// The resource a body's reference names (`{R}/{system}|{value}` at `field`), as the caller may
/// see it; one it may not see, or that does not exist, is a 422 naming `field`.
pub async fn named<R: Resource>(
    call: &Call,
    reference: &str,
    field: &str,
) -> Result<Located<R>, ApiError> {
    let identifier = parse_reference(reference, R::TYPE, field)?;
    R::locate(call, &identifier.key()).await.map_err(|e| {
        e.or_refused(|| ApiError::unprocessable(field, format!("no such {}", R::TYPE)))
    })
}

/// The beneficiary a body names at `beneficiary` (`Individual/…` or `Group/…`).
pub struct Beneficiary {
    pub kind: TargetType,
    /// `Individual` or `Group`.
    pub kind_name: &'static str,
    /// The identifier the body names it by.
    pub identifier: Identifier,
}

impl Beneficiary {
    /// Reads the reference; a malformed one is a 422 naming `beneficiary`.
    pub fn parse(reference: &str) -> Result<Self, ApiError> {
        let (kind, kind_name, _) = split_beneficiary(reference).ok_or_else(|| {
            ApiError::unprocessable("beneficiary", "must reference Individual/… or Group/…")
        })?;
        let identifier = parse_reference(reference, kind_name, "beneficiary")?;
        Ok(Self {
            kind,
            kind_name,
            identifier,
        })
    }

    /// What a change body restates its beneficiary as, for the aggregate to hold against its
    /// own: `None` when it names no registrant, else its kind and stream (`None`: no registrant
    /// holds the identifier), whoever may see it.
    pub async fn restated(
        call: &Call,
        reference: &str,
    ) -> Result<Option<(TargetType, Option<String>)>, ApiError> {
        if split_beneficiary(reference).is_none() {
            return Ok(None);
        }
        let named = Self::parse(reference)?;
        let stream = claims::resolve(call.state.lane(), named.kind_name, &named.identifier).await?;
        Ok(Some((named.kind, stream)))
    }

    /// The beneficiary as the consent scope `resource_type` lets the caller see it (what
    /// enrolment needs is a consent for memberships, not for the person's record).
    pub async fn find(
        &self,
        call: &Call,
        resource_type: &'static str,
    ) -> Result<Subject, ApiError> {
        find_subject(call, self.kind_name, resource_type, &self.identifier.key())
            .await
            .map_err(|e| e.or_refused(|| self.unknown()))
    }

    /// Creates, in `stream`, a resource about `subject` (this beneficiary as found), relying on
    /// the consent its grant came from; `command` is given the beneficiary's stream and the
    /// caller's access, and `known` is what rendering the answer needs when the creator holds
    /// it (`Write::known`). The aggregate's own consent check refusing (or the consent withdrawn
    /// meanwhile) is answered as for a beneficiary that does not exist.
    pub async fn create<R: Resource>(
        &self,
        call: &Call,
        subject: Subject,
        stream: String,
        command: impl FnOnce(String, Access) -> R::Command,
        known: Option<R::Context>,
    ) -> Result<Answer, ApiError> {
        commit(call, Self::write::<R>(subject, stream, command, known))
            .await
            .map_err(|e| self.unknown_if_not_found(e))
    }

    /// The creation `create` commits, for a writer that decides it again when what it relied
    /// on changed before the commit (`commit_afresh`); its refusal goes through
    /// `unknown_if_not_found` as `create`'s does.
    pub fn write<R: Resource>(
        subject: Subject,
        stream: String,
        command: impl FnOnce(String, Access) -> R::Command,
        known: Option<R::Context>,
    ) -> Write<R> {
        let Subject {
            stream: beneficiary,
            grant,
            access,
            key: _,
        } = subject;
        Write::<R> {
            stream,
            if_match: IfMatch::LATEST,
            consent: grant.consent_id().map(|id| (id, beneficiary.clone())),
            command: command(beneficiary, access),
            status: StatusCode::CREATED,
            known,
        }
    }

    /// A creation about this beneficiary refused as not found (the aggregate's own consent
    /// check, or the consent withdrawn meanwhile) is answered as for a beneficiary that does
    /// not exist.
    pub fn unknown_if_not_found(&self, error: ApiError) -> ApiError {
        error.not_found_as(|| self.unknown())
    }

    fn unknown(&self) -> ApiError {
        ApiError::unprocessable("beneficiary", format!("no such {}", self.kind_name))
    }
}
