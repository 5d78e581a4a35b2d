//! The consent filter of the HTTP layer (CONTRACT §5): who may see which subject, which of its
//! fields, and the headers that say so. Every read surface goes through here; the matching
//! rules themselves are the domain's (`openspp_aggregates::consent`).

use std::collections::HashMap;

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue};
use chrono::NaiveDate;
use openspp_aggregates::{Access, Actor, ConsentRecord};
use openspp_projections::consent::{self, Visibility};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::access_log::AccessEntry;
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::context::Provenance;
use crate::http::json::{json_bytes, parse};
use crate::http::reference::{parse_identifier, resolve};

/// Fields every reader gets, whatever the consent's field list.
const ALWAYS: [&str; 3] = ["type", "identifier", "meta"];

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

    /// What the caller may see of a subject it has `access` to: the consent's fields, narrowed
    /// by the client's own field filter.
    pub fn grant(&self, access: &Access, resource_type: &'static str) -> Option<Grant> {
        Grant::from_access(access, resource_type)
    }

    /// Refuses a search that filters or sorts on a field the client's own field filter hides
    /// (`fields`: parameter and field). Fields a consent hides are handled by the search itself,
    /// which admits only subjects whose consent shows them.
    pub fn may_search_on(
        &self,
        resource_type: &str,
        fields: &[(&'static str, &'static str)],
    ) -> Result<(), ApiError> {
        let Some(allowed) = self.actor().filtered_fields(resource_type) else {
            return Ok(());
        };
        match fields
            .iter()
            .find(|(_, field)| !allowed.iter().any(|a| a == field))
        {
            Some((parameter, field)) => Err(ApiError::forbidden(
                Some(parameter),
                format!("this client may not see `{field}`, so it may not search or sort by it"),
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

    /// For resources that are not about a data subject (programs): everything, no consent.
    pub fn not_personal(resource_type: &'static str) -> Self {
        Self {
            consent: None,
            fields: None,
            purpose: None,
            basis: None,
            resource_type,
        }
    }

    pub fn purpose(&self) -> Option<String> {
        self.purpose.clone()
    }

    pub fn consent_id(&self) -> Option<String> {
        self.consent.as_ref().map(|c| c.consent_id.clone())
    }

    /// Whether the grant lets the caller see the top-level `field`.
    pub fn allows(&self, field: &str) -> bool {
        ALWAYS.contains(&field)
            || self
                .fields
                .as_ref()
                .is_none_or(|allowed| allowed.iter().any(|f| f == field))
    }

    /// Drops every top-level field the grant does not allow.
    pub fn filter(&self, mut resource: Value) -> Value {
        if let (Some(allowed), Value::Object(map)) = (&self.fields, &mut resource) {
            map.retain(|key, _| ALWAYS.contains(&key.as_str()) || allowed.contains(key));
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

/// A replacement body, and the top-level fields it states. A client that may not see a field
/// leaves it out, and the aggregate then keeps it as it is; it cannot tell "left out" from
/// "cleared" without knowing which fields the body named.
pub struct Stated<T> {
    pub body: T,
    pub fields: Vec<String>,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Stated<T> {
    type Rejection = ApiError;

    /// The body is parsed from the bytes as sent, exactly as `POST` parses it (a duplicate key
    /// is refused, shape errors name their field); the top-level keys are read from the same
    /// bytes, never through a `Value`, which would keep the last of two duplicate keys.
    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_bytes(request, state).await?;
        let body = parse(&bytes)?;
        let TopLevelKeys(fields) = parse(&bytes)?;
        Ok(Self { body, fields })
    }
}

/// The keys of a JSON object, its values skipped. A replacement body must be an object: which
/// fields it states is what decides what it changes.
struct TopLevelKeys(Vec<String>);

impl<'de> serde::Deserialize<'de> for TopLevelKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = TopLevelKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<TopLevelKeys, M::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    keys.push(key);
                }
                Ok(TopLevelKeys(keys))
            }
        }
        deserializer.deserialize_map(Keys)
    }
}

/// Only the fields that identify a resource.
pub fn identity_only(mut resource: Value) -> Value {
    if let Value::Object(map) = &mut resource {
        map.retain(|key, _| ALWAYS.contains(&key.as_str()));
    }
    resource
}

/// Finds a subject by external identifier and what the caller may see of it. Unknown and
/// unconsented give the same 404, and do the same work: the consent lookup runs either way.
pub async fn find_visible(
    state: &AppState,
    principal: &Principal,
    provenance: &Provenance,
    resource: &'static str,
    resource_type: &'static str,
    id: &str,
) -> Result<Visible, ApiError> {
    let identifier = parse_identifier(id, "id")?;
    let stream = resolve(&state.pool, resource, &identifier).await?;
    // For a consent-bound caller the consent lookup runs even for an unknown identifier, so
    // that "unknown" and "not consented" take the same work.
    let consents = if principal.require_consent {
        let probe = stream.clone().unwrap_or_default();
        consent::covering(&state.pool, std::slice::from_ref(&probe))
            .await?
            .remove(&probe)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let access = principal.access(consents);
    match (stream, principal.grant(&access, resource_type)) {
        (Some(stream), Some(grant)) => Ok(Visible {
            stream,
            grant,
            access,
        }),
        (stream, _) => {
            // Refusals are accesses too: the auditor sees who asked for whom.
            let entry = AccessEntry::new(principal, provenance.request_id(), resource, "lookup")
                .returned(
                    format!("{resource}/{}", identifier.key()),
                    stream.as_deref(),
                    None,
                )
                .outcome(404);
            state.access_log.record(entry).await;
            Err(ApiError::not_found(resource))
        }
    }
}

/// A subject the caller may see: its stream, what may be seen, and the access to hand to the
/// aggregate if the caller changes it.
pub struct Visible {
    pub stream: String,
    pub grant: Grant,
    pub access: Access,
}

impl Visible {
    /// The access-log entry of a request that found this subject as `id`, before its outcome
    /// is known.
    pub fn entry(
        &self,
        principal: &Principal,
        provenance: &Provenance,
        resource: &'static str,
        interaction: &'static str,
        id: &str,
    ) -> AccessEntry {
        AccessEntry::new(principal, provenance.request_id(), resource, interaction).returned(
            format!("{resource}/{id}"),
            Some(&self.stream),
            Some(&self.grant),
        )
    }
}

/// The grants for a page of search results, in one query.
pub async fn grants_for(
    state: &AppState,
    principal: &Principal,
    resource_type: &'static str,
    streams: &[String],
) -> Result<HashMap<String, Grant>, ApiError> {
    let mut consents = if principal.require_consent {
        consent::covering(&state.pool, streams).await?
    } else {
        HashMap::new()
    };
    Ok(streams
        .iter()
        .filter_map(|stream| {
            let access = principal.access(consents.remove(stream).unwrap_or_default());
            principal
                .grant(&access, resource_type)
                .map(|g| (stream.clone(), g))
        })
        .collect())
}
