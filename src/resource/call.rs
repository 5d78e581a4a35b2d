//! One request as the application layer sees it (DESIGN's CommandContext): the server's state,
//! the client behind the token, the request's provenance, and the access-log entry it builds.

use std::sync::OnceLock;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use openspp_aggregates::{ExtendedResource, ExtensionData};
use openspp_projections::extension::ExtensionFilter;
use serde_json::Value;

use crate::api::params::Params;
use crate::api::provenance::Provenance;
use crate::app::AppState;
use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::extensions::Shown;
use crate::resource::audit::{Audit, Interaction};

pub struct Call {
    pub state: AppState,
    pub principal: Principal,
    pub provenance: Provenance,
    pub audit: Audit,
    /// Which extensions this request's answers show (`_extensions`), once the operation has
    /// read the parameter; none until then, as OpenSPP.
    extensions: OnceLock<Shown>,
    /// The top-level fields this request's answers are limited to (`_elements`), once the
    /// operation has read the parameter; every field until then.
    elements: OnceLock<Vec<String>>,
}

impl Call {
    /// A call made outside an HTTP request: work the server does later for a client (a DCI
    /// asynchronous search), which records its access through `audit` itself.
    pub fn new(
        state: AppState,
        principal: Principal,
        provenance: Provenance,
        audit: Audit,
    ) -> Self {
        Self {
            state,
            principal,
            provenance,
            audit,
            extensions: OnceLock::new(),
            elements: OnceLock::new(),
        }
    }

    /// Starts an access: 403 unless a scope grants `action` on `scope`, then opens the access-log
    /// entry of `resource`, so that everything after — a subject not found, a refused write, a
    /// malformed parameter — is logged with the answer it got.
    pub fn open(
        &self,
        scope: &str,
        action: Action,
        resource: &'static str,
        interaction: Interaction,
    ) -> Result<(), ApiError> {
        self.principal.require(scope, action)?;
        self.audit.open(
            &self.principal,
            self.provenance.request_id(),
            resource,
            interaction,
        );
        Ok(())
    }

    /// Notes which extensions this request's answers show; the first choice stands.
    pub fn show_extensions(&self, shown: Shown) {
        let _ = self.extensions.set(shown);
    }

    /// Limits this request's answers to the fields `_elements` names; the first choice stands.
    pub fn limit_elements(&self, elements: Vec<String>) {
        let _ = self.elements.set(elements);
    }

    /// The fields this request's answers are limited to, if `_elements` named any.
    pub fn elements(&self) -> Option<&[String]> {
        self.elements.get().map(Vec::as_slice)
    }

    /// Which extensions this request's answers show.
    pub fn shown_extensions(&self) -> &Shown {
        const NONE: &Shown = &Shown::None;
        self.extensions.get().unwrap_or(NONE)
    }

    /// A search's `extension.{key}.{property}=` filters on the extension data of `resource`.
    pub fn extension_filters(
        &self,
        resource: ExtendedResource,
        params: &mut Params,
    ) -> Result<Vec<ExtensionFilter>, ApiError> {
        let parameters = params.prefixed("extension.");
        self.state.extensions.filters(resource, &parameters)
    }

    /// Extension data (`data`, of a `resource`) as this request's answers show it.
    pub fn extensions_shown(
        &self,
        resource: ExtendedResource,
        data: &ExtensionData,
    ) -> Option<Value> {
        self.state
            .extensions
            .shown(resource, data, self.shown_extensions())
    }
}

impl FromRequestParts<AppState> for Call {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let provenance = Provenance::from_request_parts(parts, state).await?;
        // Outside the HTTP stack (tests, tools) there is no recorder, and nothing is logged.
        let audit = parts.extensions.get::<Audit>().cloned().unwrap_or_default();
        Ok(Self {
            state: state.clone(),
            principal,
            provenance,
            audit,
            extensions: OnceLock::new(),
            elements: OnceLock::new(),
        })
    }
}
