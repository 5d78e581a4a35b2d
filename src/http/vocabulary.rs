//! `/Vocabulary`: the code lists coded values are drawn from, as OpenSPP's
//! `spp_api_v2_vocabulary` serves them (scope `vocabulary:read`; snake_case and the bespoke
//! `{total, items}` envelope, as there), and each vocabulary's recorded changes for auditors
//! (`_history`, scope `audit:read`, **beyond OpenSPP**). Served from the catalog every process
//! holds in memory (src/vocabulary.rs).

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::Json;
use cqrs_es::Aggregate;
use openspp_aggregates::{ManagedVocabulary, VocabularyCatalog, VocabularyEvent, VocabularyState};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::bundle::{
    self, FieldChange, HistoryBundle, HistoryEvent, VocabularyProvenance, VocabularyVersion,
};
use crate::api::params::Params;
use crate::api::schema::OperationOutcome;
use crate::app::AppState;
use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::store::history::{self, Recorded};
use crate::vocabulary::{Catalog, VocabularyEntry};

const SCOPE: &str = "vocabulary";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(read))
        .routes(routes!(codes))
        .routes(routes!(history))
}

/// A vocabulary (OpenSPP `VocabularyResponse`).
#[derive(Debug, Serialize, ToSchema)]
pub struct VocabularyResponse {
    pub namespace_uri: String,
    pub name: String,
    pub version: Option<String>,
    pub description: Option<String>,
    pub reference_url: Option<String>,
    /// `core`, `social_assistance`, `social_insurance`, `labor`, `disability`, `agriculture`,
    /// `health` or `education`.
    pub domain: String,
    pub is_hierarchical: bool,
    pub code_count: usize,
}

impl From<&VocabularyEntry> for VocabularyResponse {
    fn from(entry: &VocabularyEntry) -> Self {
        let header = &entry.header;
        Self {
            namespace_uri: entry.namespace_uri.clone(),
            name: header.name.clone(),
            version: header.version.clone(),
            description: header.description.clone(),
            reference_url: header.reference_url.clone(),
            domain: header.domain.clone(),
            is_hierarchical: header.is_hierarchical,
            code_count: entry.code_count(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VocabularyListResponse {
    pub total: usize,
    pub items: Vec<VocabularyResponse>,
}

/// A code (OpenSPP `VocabularyCodeResponse`, with `target_type` and `uri` **beyond OpenSPP**:
/// an identifier type's URI is the identifier system registrants carry).
#[derive(Debug, Serialize, ToSchema)]
pub struct VocabularyCodeResponse {
    pub code: String,
    pub display: String,
    pub definition: Option<String>,
    pub deprecated: bool,
    pub parent_code: Option<String>,
    /// 0 for a root.
    pub level: usize,
    /// `individual`, `group` or `both`.
    pub target_type: String,
    pub uri: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VocabularyCodesResponse {
    pub namespace_uri: String,
    pub vocabulary_name: String,
    pub total: usize,
    pub items: Vec<VocabularyCodeResponse>,
}

/// OpenSPP refuses these namespace paths with 400 before looking anything up.
fn checked_namespace(namespace: &str) -> Result<(), ApiError> {
    let bad = namespace.contains("..")
        || namespace.chars().any(char::is_control)
        || namespace.chars().count() > openspp_aggregates::managed_vocabulary::MAX_URI;
    if bad {
        return Err(ApiError::bad_request(
            Some("namespace_uri"),
            "invalid namespace URI format",
        ));
    }
    Ok(())
}

fn not_found(namespace: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not-found",
        format!("Vocabulary not found: {namespace}"),
    )
}

fn page(params: &mut Params, default: i64, max: i64) -> Result<(usize, usize), ApiError> {
    let count = params.integer("_count", default, (1, max))?;
    let offset = params.integer("_offset", 0, (0, i64::MAX))?;
    Ok((
        count as usize,
        usize::try_from(offset).unwrap_or(usize::MAX),
    ))
}

/// List vocabularies, by name.
#[utoipa::path(get, path = "/Vocabulary", tag = "Vocabulary",
    params(
        ("domain" = Option<String>, Query, description = "Only this domain (core, social_assistance, health, …)"),
        ("_count" = Option<i64>, Query, description = "1-100, default 50"),
        ("_offset" = Option<i64>, Query),
    ),
    responses(
        (status = 200, body = VocabularyListResponse),
        (status = 400, body = OperationOutcome),
        (status = 401, body = OperationOutcome),
        (status = 403, body = OperationOutcome),
    ),
    security(("bearer" = ["vocabulary:read"])))]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<VocabularyListResponse>, ApiError> {
    principal.require(SCOPE, Action::Read)?;
    let mut params = Params::from_uri(&uri)?;
    let domain = params.one("domain")?;
    let (count, offset) = page(&mut params, 50, 100)?;
    params.finish()?;
    if let Some(domain) = &domain {
        if domain.len() > 50
            || !domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(ApiError::bad_request(
                Some("domain"),
                "must be letters, digits and `_`, at most 50",
            ));
        }
    }
    let catalog = state.vocabulary.catalog();
    let matching: Vec<&VocabularyEntry> = catalog
        .by_name()
        .into_iter()
        .filter(|v| domain.as_ref().is_none_or(|d| v.header.domain == *d))
        .collect();
    Ok(Json(VocabularyListResponse {
        total: matching.len(),
        items: matching
            .into_iter()
            .skip(offset)
            .take(count)
            .map(Into::into)
            .collect(),
    }))
}

/// One vocabulary.
#[utoipa::path(get, path = "/Vocabulary/{namespace_uri}", tag = "Vocabulary",
    params(("namespace_uri" = String, Path, description = "The vocabulary's namespace URI, URL-encoded")),
    responses(
        (status = 200, body = VocabularyResponse),
        (status = 400, body = OperationOutcome),
        (status = 403, body = OperationOutcome),
        (status = 404, body = OperationOutcome),
    ),
    security(("bearer" = ["vocabulary:read"])))]
async fn read(
    State(state): State<AppState>,
    principal: Principal,
    Path(namespace): Path<String>,
) -> Result<Json<VocabularyResponse>, ApiError> {
    principal.require(SCOPE, Action::Read)?;
    checked_namespace(&namespace)?;
    let catalog = state.vocabulary.catalog();
    let entry = catalog
        .vocabulary(&namespace)
        .ok_or_else(|| not_found(&namespace))?;
    Ok(Json(entry.into()))
}

/// A vocabulary's codes, by sequence then code.
#[utoipa::path(get, path = "/Vocabulary/{namespace_uri}/codes", tag = "Vocabulary",
    params(
        ("namespace_uri" = String, Path, description = "The vocabulary's namespace URI, URL-encoded"),
        ("include_deprecated" = Option<bool>, Query, description = "Also deprecated codes (default false)"),
        ("parent_code" = Option<String>, Query, description = "Only the direct children of this code"),
        ("_count" = Option<i64>, Query, description = "1-500, default 100", minimum = 1, maximum = 500),
        ("_offset" = Option<i64>, Query),
    ),
    responses(
        (status = 200, body = VocabularyCodesResponse),
        (status = 400, body = OperationOutcome),
        (status = 403, body = OperationOutcome),
        (status = 404, body = OperationOutcome),
    ),
    security(("bearer" = ["vocabulary:read"])))]
async fn codes(
    State(state): State<AppState>,
    principal: Principal,
    Path(namespace): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<VocabularyCodesResponse>, ApiError> {
    principal.require(SCOPE, Action::Read)?;
    checked_namespace(&namespace)?;
    let mut params = Params::from_uri(&uri)?;
    let include_deprecated = params.boolean("include_deprecated")?.unwrap_or(false);
    let parent = params.one("parent_code")?;
    let (count, offset) = page(&mut params, 100, 500)?;
    params.finish()?;
    if parent.as_ref().is_some_and(|p| p.chars().count() > 64) {
        return Err(ApiError::bad_request(
            Some("parent_code"),
            "must be at most 64 characters",
        ));
    }
    let catalog = state.vocabulary.catalog();
    let entry = catalog
        .vocabulary(&namespace)
        .ok_or_else(|| not_found(&namespace))?;
    let matching: Vec<_> = entry
        .codes
        .iter()
        .filter(|c| include_deprecated || !c.definition.deprecated)
        .filter(|c| {
            parent
                .as_ref()
                .is_none_or(|p| c.definition.parent_code.as_ref() == Some(p))
        })
        .collect();
    Ok(Json(VocabularyCodesResponse {
        namespace_uri: entry.namespace_uri.clone(),
        vocabulary_name: entry.header.name.clone(),
        total: matching.len(),
        items: matching
            .into_iter()
            .skip(offset)
            .take(count)
            .map(|c| {
                let code = &c.definition;
                VocabularyCodeResponse {
                    code: code.code.clone(),
                    display: code.display.clone(),
                    definition: code.definition.clone(),
                    deprecated: code.deprecated,
                    parent_code: code.parent_code.clone(),
                    level: c.level,
                    target_type: code.target_type.as_str().to_owned(),
                    uri: code.uri.clone(),
                }
            })
            .collect(),
    }))
}

/// What one recorded change did: each header field and code it changed, old and new (the
/// first change of a shipped vocabulary is compared with what was shipped).
fn changes(before: &VocabularyState, after: &VocabularyState) -> Vec<FieldChange> {
    let mut changed = Vec::new();
    let header = |state: &VocabularyState| {
        state
            .header
            .as_ref()
            .map(|h| serde_json::to_value(h).unwrap_or_default())
            .unwrap_or(Value::Null)
    };
    let (old, new) = (header(before), header(after));
    if old != new {
        for (field, value) in new.as_object().into_iter().flatten() {
            let previous = old.get(field).cloned().unwrap_or(Value::Null);
            if previous != *value {
                changed.push(FieldChange {
                    field: field.clone(),
                    old: previous,
                    new: value.clone(),
                });
            }
        }
    }
    for (code, definition) in &after.codes {
        let previous = before.codes.get(code);
        if previous != Some(definition) {
            changed.push(FieldChange {
                field: format!("codes.{code}"),
                old: serde_json::to_value(previous).unwrap_or_default(),
                new: serde_json::to_value(definition).unwrap_or_default(),
            });
        }
    }
    changed
}

/// Who made a change (the operator, or the API client), how, when, in which run.
fn provenance(event: &Recorded) -> VocabularyProvenance {
    let meta = &event.metadata;
    VocabularyProvenance {
        actor: bundle::text(meta, "source_system"),
        collection_method: bundle::text(meta, "collection_method"),
        request_id: bundle::text(meta, "request_id"),
        recorded: event.recorded_at.to_rfc3339(),
        hash: hex::encode(&event.hash),
    }
}

/// The vocabulary's recorded changes, newest first: who changed what, and when.
#[utoipa::path(get, path = "/Vocabulary/{namespace_uri}/_history", tag = "Vocabulary",
    params(
        ("namespace_uri" = String, Path, description = "The vocabulary's namespace URI, URL-encoded"),
        ("_count" = Option<i64>, Query), ("_offset" = Option<i64>, Query),
    ),
    responses(
        (status = 200, body = HistoryBundle<VocabularyVersion>, description = "FHIR Bundle of type history"),
        (status = 403, body = OperationOutcome),
        (status = 404, body = OperationOutcome),
    ),
    security(("bearer" = ["audit:read"])))]
async fn history(
    State(state): State<AppState>,
    principal: Principal,
    Path(namespace): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<HistoryBundle<VocabularyVersion>>, ApiError> {
    principal.require("audit", Action::Read)?;
    checked_namespace(&namespace)?;
    let mut params = Params::from_uri(&uri)?;
    let page = params.page()?;
    params.finish()?;
    let catalog: std::sync::Arc<Catalog> = state.vocabulary.catalog();
    if catalog.vocabulary(&namespace).is_none() {
        return Err(not_found(&namespace));
    }
    let events = history::stream(&state.pool, ManagedVocabulary::TYPE, &namespace).await?;
    let baseline = catalog.seeded(&namespace).unwrap_or_default();
    let mut stream = ManagedVocabulary::default();
    let mut before = baseline.clone();
    let mut entries = Vec::with_capacity(events.len());
    for event in events {
        let payload: VocabularyEvent =
            serde_json::from_value(event.payload.clone()).map_err(|error| {
                tracing::error!(%error, sequence = event.sequence, "unreadable stored event");
                ApiError::internal()
            })?;
        stream.apply(payload);
        let after = baseline.overlaid(&stream.changes);
        entries.push(VocabularyVersion {
            version_id: event.sequence.to_string(),
            event: HistoryEvent::named(&event.event_type),
            changes: changes(&before, &after),
            provenance: provenance(&event),
        });
        before = after;
    }
    entries.reverse();
    Ok(Json(HistoryBundle::page(&uri, page, entries)))
}
