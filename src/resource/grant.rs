//! What a caller may see of a subject (CONTRACT §5): the consent filter every surface applies,
//! and the headers that say which applied. The matching rules themselves are the domain's
//! (`openspp_aggregates::consent`); this turns their answer into what a response shows.

use axum::http::{HeaderMap, HeaderValue};
use chrono::NaiveDate;
use openspp_aggregates::consent::{extension_field, shows, shows_any_extension, EXTENSION};
use openspp_aggregates::{Access, Actor, ConsentRecord};
use openspp_projections::consent::Visibility;
use serde_json::Value;

use std::collections::HashMap;

use openspp_projections::consent;

use crate::access_log::Disclosure;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::resource::call::Call;

/// Fields every reader gets, whatever the consent's field list.
pub(crate) const ALWAYS: [&str; 3] = ["type", "identifier", "meta"];

pub fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

impl Principal {
    /// The caller as the domain's consent rules see it.
    pub fn actor(&self) -> Actor {
        Actor {
            organization: self.organization.clone(),
            organization_type: self.organization_type.clone(),
            legal_basis: if self.require_consent {
                None
            } else {
                self.legal_basis.clone()
            },
            field_filter: self.field_filter.clone(),
        }
    }

    /// Which rows a search may count and return for this caller.
    pub fn visibility(&self) -> Visibility {
        if self.require_consent {
            Visibility::Consented {
                organization: self.organization.clone(),
                organization_type: self.organization_type.clone(),
                today: today(),
            }
        } else {
            Visibility::All
        }
    }

    /// Refuses a search that filters or sorts on a field the client's own field filter hides
    /// (`fields`: parameter and field). Fields a consent hides are handled by the search itself,
    /// which admits only subjects whose consent shows them.
    pub fn may_search_on(
        &self,
        resource_type: &str,
        fields: &[(String, String)],
    ) -> Result<(), ApiError> {
        let Some(allowed) = self.actor().filtered_fields(resource_type) else {
            return Ok(());
        };
        match fields.iter().find(|(_, field)| !shows(&allowed, field)) {
            Some((parameter, field)) => Err(ApiError::forbidden(
                Some(parameter),
                format!("this client may not see `{field}`, so it may not search or sort by it"),
            )),
            None => Ok(()),
        }
    }

    /// Refuses a registration whose body states a field the client's own field filter hides
    /// (`stated`: the body's top-level fields; `extensions`: each extension it states, as the
    /// key it was sent under and its URI), as a replacement is refused: a client may not write
    /// what it may not read back. A registration is the data controller's, so no consent
    /// narrows it further.
    pub fn may_register(
        &self,
        resource_type: &str,
        stated: &[String],
        extensions: &[(String, String)],
    ) -> Result<(), ApiError> {
        let access = self.access(Vec::new());
        access
            .hidden_fields(resource_type, stated, today())
            .map_err(crate::resource::domain_error)?;
        match extensions
            .iter()
            .find(|(_, uri)| !access.sees(resource_type, &extension_field(uri), today()))
        {
            Some((key, _)) => Err(ApiError::forbidden(
                Some(&format!("{EXTENSION}.{key}")),
                "this client may not see this extension, so it may not write it; leave it out",
            )),
            None => Ok(()),
        }
    }

    /// Registering a person or a group, like recording a consent, is the data controller's
    /// act: a client that itself acts under the subjects' consent gets 403, decided before
    /// anything is looked up, so that no answer depends on whether an identifier is taken
    /// (which would tell it of people it may not see). `act` says what was refused.
    pub fn require_controller(&self, act: &str) -> Result<(), ApiError> {
        if self.require_consent {
            return Err(ApiError::forbidden(
                None,
                format!(
                    "insufficient authority: only a client acting under a legal basis (the data \
                     controller's) may {act}"
                ),
            ));
        }
        Ok(())
    }

    /// Only a client acting under a legal basis with no program limit may choose a
    /// membership's identifier; any other gets one minted. Decided before anything is looked
    /// up, so that a clash (409) can never tell a client limited to some programs, or acting
    /// under consent, that a membership it may not see uses the value.
    pub fn may_choose_membership_identifier(&self) -> Result<(), ApiError> {
        if self.require_consent || !self.allowed_programs.is_empty() {
            return Err(ApiError::forbidden(
                Some("identifier"),
                "this client may not choose a membership's identifier (it is limited to some \
                 programs, or acts under consent); leave it out and one is minted",
            ));
        }
        Ok(())
    }

    /// The access this caller has to a subject covered by `consents`.
    pub fn access(&self, consents: Vec<ConsentRecord>) -> Access {
        Access {
            actor: self.actor(),
            consents,
        }
    }
}

/// What a caller may see of one subject.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The consent relied on; `None` under a legal basis.
    pub consent: Option<ConsentRecord>,
    /// Top-level fields allowed; `None` = all.
    pub fields: Option<Vec<String>>,
    purpose: Option<String>,
    basis: Option<String>,
    resource_type: &'static str,
}

impl Grant {
    /// The grant `access` gives for `resource_type`, if any: the fields the domain says the
    /// caller may see (`Access::fields`), and the first consent that covers it.
    pub fn from_access(access: &Access, resource_type: &'static str) -> Option<Self> {
        let fields = access.fields(resource_type, today());
        if let Some(basis) = &access.actor.legal_basis {
            return Some(Self {
                consent: None,
                fields,
                purpose: None,
                basis: Some(basis.clone()),
                resource_type,
            });
        }
        let first = access.matching(resource_type, today()).next()?;
        Some(Self {
            purpose: first.scope_for(resource_type).map(|s| s.purpose.clone()),
            consent: Some(first.clone()),
            fields,
            basis: None,
            resource_type,
        })
    }

    /// For what is not about a data subject (programs, consents themselves): everything, no
    /// consent, no consent headers.
    pub fn not_personal(resource_type: &'static str) -> Self {
        Self {
            consent: None,
            fields: None,
            purpose: None,
            basis: None,
            resource_type,
        }
    }

    pub fn consent_id(&self) -> Option<String> {
        self.consent.as_ref().map(|c| c.consent_id.clone())
    }

    /// What the access log records of this grant.
    pub fn disclosure(&self) -> Disclosure {
        Disclosure {
            consent_id: self.consent_id(),
            purpose: self.purpose.clone(),
            fields: self.fields.clone(),
        }
    }

    /// Whether the caller sees less than everything of the subject: a field list applies, or
    /// a consent does (under which a group's members, say, are shown only where the caller may
    /// see them too).
    pub fn is_limited(&self) -> bool {
        self.fields.is_some() || self.consent.is_some()
    }

    /// Whether the grant lets the caller see `field` (a top-level field, or one extension's
    /// data: `extension.<uri>`).
    pub fn allows(&self, field: &str) -> bool {
        ALWAYS.contains(&field)
            || self
                .fields
                .as_ref()
                .is_none_or(|allowed| shows(allowed, field))
    }

    /// Drops every field the grant does not allow: top-level fields, and within `extension`
    /// each extension (named by its `url`) the grant does not show.
    pub fn filter(&self, mut resource: Value) -> Value {
        if let (Some(allowed), Value::Object(map)) = (&self.fields, &mut resource) {
            map.retain(|key, _| {
                ALWAYS.contains(&key.as_str())
                    || allowed.contains(key)
                    || (key == EXTENSION && shows_any_extension(allowed))
            });
            if let Some(Value::Object(extensions)) = map.get_mut(EXTENSION) {
                extensions.retain(|_, data| {
                    data.get("url")
                        .and_then(Value::as_str)
                        .is_some_and(|uri| shows(allowed, &extension_field(uri)))
                });
            }
        }
        resource
    }

    /// `X-Consent-Status` and `X-Consent-Scope` for single reads.
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if self.basis.is_none() && self.consent.is_none() {
            return headers;
        }
        let (status, scope) = match &self.basis {
            Some(basis) => ("not-required".to_owned(), format!("legal-basis={basis}")),
            None => (
                "active".to_owned(),
                format!(
                    "{};fields={};purpose={}",
                    self.resource_type,
                    self.fields.as_ref().map_or("*".to_owned(), |f| f.join(",")),
                    self.purpose.clone().unwrap_or_default()
                ),
            ),
        };
        for (name, value) in [("x-consent-status", status), ("x-consent-scope", scope)] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        headers
    }
}

/// Only the fields that identify a resource.
pub fn identity_only(mut resource: Value) -> Value {
    if let Value::Object(map) = &mut resource {
        map.retain(|key, _| ALWAYS.contains(&key.as_str()));
    }
    resource
}

/// A rendering as `grant` lets the caller see it; without a grant, its identity only.
pub fn shown(resource: Value, grant: Option<&Grant>) -> Value {
    match grant {
        Some(grant) => grant.filter(resource),
        None => identity_only(resource),
    }
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
